"""Calibration note (claim ``calibration_note``): where Propositions 1-3 hold; the
recalled values fail.

**What is checked.** SPEC §9 (our reconstruction, not the paper) observed that with the
recalled Figure-2 parameters (SPEC §7.2, tag [R-L]: unit signal ``c = 1``,
``eta = 0.5``, ``alpha = 0.5``, ``lambda = 0.3``) the router does **not** specialise,
and that a stronger signal or a larger ``eta`` makes it specialise. This chapter checks
that observation and maps, over a phase diagram (signal scale ``c`` x router learning
rate ``eta``) and slices (aux-gradient variant, ``lambda``, ``alpha``), where the claim
checks P1, P2, P3a (and P3b) of :mod:`moecl_lib.analysis.calibration` hold. It selects
the calibrated defaults (``moecl_lib.analysis.calibration.CALIBRATED``, tag [C]) that
the other linear chapters use.

**Claim checks** (:mod:`moecl_lib.claims.rule`: a reading holds when it clears its
threshold by 2 s.e.):

* ``calibration_note [recalled]`` -- the recalled setting (``T1`` from the SPEC A15
  formula) does not specialise. Readings: routing purity right after ``T1`` ``<= 0.9``
  (the P1 purity threshold, ``ClaimThresholds.purity``) with the literal decaying aux
  gradient and with the non-decaying one, and purity in the last window of a router that
  is never frozen ``<= 0.9`` (no specialisation even with ``T`` rounds of router
  training).
* ``calibration_note [calibrated]`` -- the calibrated point (``CALIBRATED``,
  ``T1 = 30 M``) lies where P1, P2 and P3a hold; one reading per part of each (the parts
  of ``moecl_lib.analysis.calibration.check_claims``):

  - P1: purity after ``T1`` ``>= 0.9``; fraction of tasks owning an expert set
    ``>= 0.9``;
  - P2: ``G_T(never) / G_T(gap) >= 1.25`` (paired delta-method s.e.);
    ``G_T(never) - G_T(gap) >= 0`` (paired);
  - P3a: fraction of runs frozen ``>= 0.95`` (binomial s.e.); purity after
    ``T2 >= 0.9``; ``G_{T/2}(gap) - G_T(gap) >= 0`` (still decreasing; paired);
    ``G_T(gap) / G_T(M=1) <= 0.5`` (independent batches, delta-method s.e.).

  The point is simulated with ``n_runs_point`` runs (more than a phase-diagram cell) so
  that these readings are decided at every seed.

**Phase diagram.** Every cell is simulated with ``gap`` and ``never`` (same seed:
identical task streams and draws up to ``T1``) and the single expert, ``n_runs`` runs
each. A claim in a cell is the conjunction of its readings: it *holds* when every
reading holds, *fails* when at least one fails, and is *inconclusive* otherwise
(:func:`conjunction`). P3b adds to P3a's first two readings the within-set uniformity
``>= 0.8``; a cell without any set of two or more experts has no uniformity (NaN) and
P3b fails there. The statistics behind the outcomes are recorded per cell
(``pd_c<c>_eta<eta>_<statistic>``); the numbers of cells where a claim holds are printed
and glued into the prose (:func:`phase_sentence`) but not recorded as compared
quantities: with a few runs per cell some cells sit near the 2-s.e. margin, and those
counts moved when the same runs were simulated with the numpy backend (a stand-in for
another CPU's rounding).

**Conventions.** Diagnostics are those of
:func:`moecl_lib.analysis.routing.specialisation` with its default window
(``max(200, 20 M)`` rounds, at most ``T / 4``): *purity after T1* is the purity of the
routing in ``(T1, T1 + window]`` of the ``gap`` run, *purity after T2* that of
``(T2, T]``, expert sets come from the post-``T2`` routing (primary task of every
expert). ``G_{T/2}`` is ``G_t`` at ``t = T // 2``. Every quantity is a mean over the
runs of one batch with its standard error (``ddof = 1``).

**Where the parts are.** Parameters, simulation, a cell's readings, the sweeps and the
:class:`Result`: :mod:`moecl_lib.claims.calibration_cells`; tables, sentences and
figures: :mod:`moecl_lib.claims.calibration_report`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from moecl_lib.analysis.calibration import (
    CALIBRATED,
    CALIBRATED_T1_PER_EXPERT,
    ClaimThresholds,
    setting_config,
)
from moecl_lib.claims.calibration_cells import (
    CELL_STATS,
    CHAPTER,
    CLAIMS,
    Cell,
    MemberRuns,
    Params,
    Result,
    Simulator,
    _reading,
    cell_key,
    conjunction,
    count_outcomes,
    independent_ratio,
    mean_se,
    p1_readings,
    p2_readings,
    p3a_readings,
    p3b_readings,
    paired_ratio,
    proportion,
    run_cell,
    simulate_member,
    sweep,
)
from moecl_lib.claims.calibration_report import (
    TABLE_STATS,
    alpha_sentence,
    aux_sentence,
    p2_high_gain_sentence,
    p3b_sentence,
    phase_figure,
    phase_sentence,
    slices_figure,
    table_rows,
)
from moecl_lib.claims.rule import ClaimCheck, Quantity
from moecl_lib.sweep.tasks import shared_scheduler

__all__ = [
    "CELL_STATS",
    "CHAPTER",
    "CLAIM",
    "CLAIMS",
    "TABLE_STATS",
    "Cell",
    "MemberRuns",
    "Params",
    "Result",
    "Simulator",
    "alpha_sentence",
    "aux_sentence",
    "calibrated_check",
    "cell_key",
    "conjunction",
    "count_outcomes",
    "independent_ratio",
    "mean_se",
    "p1_readings",
    "p2_high_gain_sentence",
    "p2_readings",
    "p3a_readings",
    "p3b_readings",
    "p3b_sentence",
    "paired_ratio",
    "phase_figure",
    "phase_sentence",
    "proportion",
    "recalled_check",
    "run",
    "run_cell",
    "simulate_member",
    "slices_figure",
    "sweep",
    "table_rows",
]

CLAIM = "calibration_note"


def _q(name: str, est: tuple[float, float, int], label: str = "") -> Quantity:
    return Quantity(name, est[0], est[1], est[2], "estimate", 0.0, label)


def run(params: Params = Params(), scheduler: str | None = "inline") -> Result:
    """Simulate the recalled setting, the calibrated point, the phase diagram and the
    slices; read the claims. ``scheduler``: where the sweeps' members run
    (``"inline"``, ``"local"`` or a Dask address; :mod:`moecl_lib.sweep.tasks`); the
    numbers do not depend on it."""
    with shared_scheduler(scheduler) as address:
        return _run(params, address)


def _run(p: Params, scheduler: str | None) -> Result:
    start = time.perf_counter()
    th = ClaimThresholds()
    kw = dict(T=p.T, n_runs=p.n_runs, seed=p.seed)
    # 1. recalled setting: T1 from the config formula, both aux-gradient variants
    rec_sim = Simulator(setting_config("recalled", p.n_experts, **kw), None, scheduler)
    recalled = sweep(
        rec_sim, [dict(aux_grad="decay"), dict(aux_grad="no_decay")], None, th
    )
    # 2. phase diagram and slices around the calibrated point (T1 = 30 M)
    sim = Simulator(setting_config("calibrated", p.n_experts, **kw), None, scheduler)
    t1 = CALIBRATED_T1_PER_EXPERT
    phase = sweep(
        sim,
        [dict(signal_scale=c, eta=e) for c in p.signal_scales for e in p.etas],
        t1,
        th,
    )
    aux = sweep(
        sim,
        [
            dict(signal_scale=c, eta=CALIBRATED["eta"], aux_grad=a)
            for c in p.aux_slice_scales
            for a in ("decay", "no_decay")
        ],
        t1,
        th,
    )
    lam = sweep(
        sim, [dict(lam=v) for v in sorted(set(p.lams) | {CALIBRATED["lam"]})], t1, th
    )
    alpha = sweep(
        sim,
        [dict(alpha=v) for v in sorted(set(p.alphas) | {CALIBRATED["alpha"]})],
        t1,
        th,
    )
    # 3. the calibrated point with more runs (decides the claim readings)
    point_sim = Simulator(
        setting_config(
            "calibrated", p.n_experts, T=p.T, n_runs=p.n_runs_point, seed=p.seed
        )
    )
    point = run_cell(point_sim, {}, t1, th)

    checks = [recalled_check(recalled, th), calibrated_check(point)]
    counts = count_outcomes(phase)
    quantities = _quantities(recalled, point, phase, aux, lam, alpha)
    configs = {f"recalled_{k}": v for k, v in rec_sim.configs().items()}
    configs.update({f"sweep_{k}": v for k, v in sim.configs().items()})
    configs.update({f"point_{k}": v for k, v in point_sim.configs().items()})
    return Result(
        params=p,
        recalled=recalled,
        recalled_T1=rec_sim.base.T1_value,
        point=point,
        phase=phase,
        aux=aux,
        lam=lam,
        alpha=alpha,
        quantities=quantities,
        checks=checks,
        configs=configs,
        counts=counts,
        wall_time_s=time.perf_counter() - start,
        thresholds=th,
    )


def recalled_check(
    recalled: Sequence[Cell], th: ClaimThresholds = ClaimThresholds()
) -> ClaimCheck:
    """``calibration_note [recalled]``: the router does not specialise with the recalled
    values."""
    by_aux = {c.labels["aux_grad"]: c for c in recalled}
    readings = []
    for aux, words in (
        ("decay", "literal 1/t aux gradient"),
        ("no_decay", "non-decaying aux gradient"),
    ):
        readings.append(
            _reading(
                f"not_specialised_{aux}",
                f"recalled, {words}: routing purity in the window after T1 ≤ "
                f"{th.purity:g}",
                mean_se(by_aux[aux].gap.purity_early),
                th.purity,
                "<=",
            )
        )
    readings.append(
        _reading(
            "not_specialised_late",
            "recalled, router never frozen: routing purity in the last window "
            f"≤ {th.purity:g}",
            mean_se(by_aux["decay"].never.purity_late),
            th.purity,
            "<=",
        )
    )
    return ClaimCheck(CLAIM, "recalled", tuple(readings))


def calibrated_check(point: Cell) -> ClaimCheck:
    """``calibration_note [calibrated]``: P1, P2 and P3a hold at the calibrated point
    (every part)."""
    return ClaimCheck(
        CLAIM,
        "calibrated",
        point.readings["P1"] + point.readings["P2"] + point.readings["P3a"],
    )


def _quantities(
    recalled: Sequence[Cell],
    point: Cell,
    phase: Sequence[Cell],
    aux: Sequence[Cell],
    lam: Sequence[Cell],
    alpha: Sequence[Cell],
) -> list[Quantity]:
    qs: list[Quantity] = []
    for c in recalled:
        a = c.labels["aux_grad"]
        s = c.stats()
        qs += [
            _q(f"recalled_{a}_purity_T1", s["purity_T1"]),
            _q(f"recalled_{a}_purity_late_never", s["purity_late_never"]),
            _q(f"recalled_{a}_coverage", s["coverage"]),
            _q(f"recalled_{a}_ratio_never_gap", s["ratio_never_gap"]),
            _q(f"recalled_{a}_G_gap_over_single", s["G_gap_over_single"]),
        ]
    s = point.stats()
    for k in (
        "purity_T1",
        "coverage",
        "ratio_never_gap",
        "G_T_gap",
        "G_T_never",
        "G_T_single",
        "G_gap_over_single",
        "purity_post_T2",
        "frozen",
        "uniformity",
    ):
        qs.append(_q(f"point_{k}", s[k]))
    qs.append(_q("point_G_half_minus_G_T", mean_se(point.gap.G_half - point.gap.G_T)))
    for c in phase:
        s = c.stats()
        key = cell_key(c.labels["signal_scale"], c.labels["eta"])
        qs += [_q(f"pd_{key}_{k}", s[k]) for k in CELL_STATS if np.isfinite(s[k][0])]
    for c in aux:
        s = c.stats()
        key = f"aux_c{c.labels['signal_scale']:g}_{c.labels['aux_grad']}".replace(
            ".", "p"
        )
        qs += [
            _q(f"{key}_purity_T1", s["purity_T1"]),
            _q(f"{key}_ratio_never_gap", s["ratio_never_gap"]),
        ]
    for name, cells in (("lam", lam), ("alpha", alpha)):
        for c in cells:
            s = c.stats()
            key = f"{name}{c.labels[name]:g}".replace(".", "p")
            qs += [
                _q(f"{key}_{k}", s[k])
                for k in ("purity_T1", "ratio_never_gap", "uniformity")
                if np.isfinite(s[k][0])
            ]
    # The numbers of cells where a claim holds are not recorded: they moved when the
    # same runs were simulated by the numpy backend instead of the numba kernel (a
    # stand-in for another CPU's rounding), because several 16-run cells sit near the
    # 2-s.e. margin. The per-cell statistics above are recorded.
    return qs
