"""Bootstrap standard errors (moecl_lib.claims.resampling)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from moecl_lib.claims.resampling import bootstrap_se


def test_bootstrap_se_of_a_mean_is_the_textbook_one():
    x = np.random.default_rng(3).normal(size=400)
    se = bootstrap_se(lambda i: float(x[i].mean()), x.size, n_boot=2000)
    assert se == pytest.approx(x.std(ddof=1) / math.sqrt(x.size), rel=0.1)
    # a statistic that ignores the runs has no spread; one that is never finite, inf
    assert bootstrap_se(lambda i: 1.0, 10) == 0.0
    assert bootstrap_se(lambda i: math.nan, 10) == math.inf
