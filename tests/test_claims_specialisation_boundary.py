"""Chapter specialisation_boundary as data: quantities, readings, figures; the aux-only
emulation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from moecl_lib.analysis.aux_only import simulate_aux_only
from moecl_lib.analysis.calibration import setting_config
from moecl_lib.claims import specialisation_boundary as chapter
from moecl_lib.claims import specialisation_figures as chapter_figures
from moecl_lib.config import ConfigError
from moecl_lib.linear.engine import simulate

SMALL = chapter.Params(
    n_runs=16, map_scales=(2.0, 4.0), map_etas=(0.25, 1.0, 4.0), map_runs=4,
    p2_T=400, p2_runs=8, aux_runs=2, gammas=(0.318, 10.0), gamma_T=700, gamma_runs=4,
)  # fmt: skip


@pytest.fixture(scope="module")
def small() -> chapter.Result:
    return chapter.run(SMALL)


def test_record_has_every_part(small: chapter.Result) -> None:
    rec = small.record
    assert rec.chapter == "specialisation_boundary"
    names = [q.name for q in rec.quantities]
    assert len(names) == len(set(names))
    for name in ("gain_star", "purity_below", "purity_above", "onset_pred", "p2_lb",
                 "aux_spread_T", "aux_pmax_T1", "gamma_share_calibrated",
                 "gamma_differ_recalled"):  # fmt: skip
        assert name in names
    claims = [(c.claim, c.setting) for c in rec.checks]
    assert claims == [
        ("specialisation_boundary", "calibrated"),
        ("prop2_mechanism", "calibrated"),
        ("termination_gamma", "calibrated"),
        ("termination_gamma", "recalled"),
    ]
    json.dumps(rec.to_dict())
    assert small.quantity("gain_star").value == pytest.approx(9.684, abs=1e-3)
    assert small.quantity("p2_t2").value == 319 and small.quantity("p2_T1").value == 150


def test_regime_and_gamma_readings(small: chapter.Result) -> None:
    p2 = small.checks[1]
    assert p2.readings[0].name == "regime" and p2.readings[0].outcome == "holds"
    # in the calibrated setting the gap rule freezes at T1 + 1 at the default Gamma
    assert small.checks[2].readings[0].outcome == "fails"
    assert small.quantity("gamma_share_calibrated").value == 0.0


def test_figures_and_csv(small: chapter.Result, tmp_path) -> None:
    from moecl_lib import figures

    for fn in (
        chapter_figures.plot_map,
        chapter_figures.plot_onset,
        chapter_figures.plot_gamma,
        chapter_figures.plot_aux,
    ):
        fig, csv = fn(small)
        figures.save_csv(tmp_path, fn.__name__, csv)
        assert len(fig.axes) >= 1


def test_crossing_gains() -> None:
    c, eta = np.array([1.0, 2.0]), np.array([1.0, 2.0, 4.0])
    purity = np.array([[0.3, 0.5, 0.7], [0.7, 0.8, 0.9]])[..., None]
    got = chapter.crossing_gains(c, eta, purity)
    assert got[0] == pytest.approx(
        2 * np.sqrt(2)
    )  # half-way in log gain between 2 and 4
    assert np.isnan(got[1])  # starts above the crossing level


def test_aux_only_equals_engine_when_never_switched_off() -> None:
    cfg = setting_config("calibrated", 6, T=120, n_runs=3, termination="never",
                         streams="per_run", seed=4)  # fmt: skip
    emu, res = simulate_aux_only(cfg, None, every=40), simulate(cfg)
    np.testing.assert_array_equal(emu.experts, res.experts)
    np.testing.assert_array_equal(emu.tasks, res.tasks)
    with pytest.raises(ConfigError):
        simulate_aux_only(cfg.replace(termination="gap"), None)
