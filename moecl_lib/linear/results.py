"""The result type shared by every linear simulator (engine, reference, forced routing,
Expert Gate) and its preallocated buffers.

Conventions (SPEC §5.1): arrays of shape (R, T); index ``t - 1`` holds the value after
round t; ``F_1`` is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.floating]
IntArray = NDArray[np.integer]


@dataclass
class RunCurves:
    """Per-round curves of R linear runs (index ``t - 1`` holds the value after round
    t), SPEC §5.1.

    The common part of every linear simulation result (engine, naive reference, forced
    and Expert-Gate routing).

    Attributes:
        F: forgetting ``F_t`` (arrival-averaged, denominator t - 1; may be negative),
            (R, T); NaN at t = 1.
        G: generalisation error ``G_t`` (arrival-averaged, denominator t), (R, T).
        G_pool: pool-averaged error ``(1/N) sum_n`` error of task n under the
            simulation's routing rule for it (each result type states its rule), (R, T).
        err_new: error of each arrival right after it was learned, ``E_t(t)``, (R, T).
        experts: expert ``m_t`` that learned round t, (R, T).
        tasks: arriving task ``n_t``, (R, T).
    """

    F: FloatArray
    G: FloatArray
    G_pool: FloatArray
    err_new: FloatArray
    experts: IntArray
    tasks: IntArray


def curve_buffers(
    shape: tuple[int, int], dtype: np.dtype | str, int_dtype: np.dtype | type = np.int64
) -> tuple[np.ndarray, ...]:
    """Output buffers for the fields of :class:`RunCurves`, in field order
    ``(F, G, G_pool, err_new, experts, tasks)``, all of ``shape`` (``(R, T)``, or
    ``(T, R)`` for a loop that writes rows): floats uninitialised except ``F``, which
    starts as NaN (undefined at t = 1); ``experts`` and ``tasks`` of ``int_dtype``."""
    floats = tuple(np.empty(shape, dtype=dtype) for _ in range(3))
    return (
        (np.full(shape, np.nan, dtype=dtype),)
        + floats
        + (np.empty(shape, dtype=int_dtype), np.empty(shape, dtype=int_dtype))
    )
