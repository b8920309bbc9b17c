"""When does the router specialise, and which mechanisms do Propositions 2 and 3 rest
on? (issue 16)

Three parts, each a :class:`~moecl_lib.claims.rule.ClaimCheck` under the written verdict
rule (:mod:`moecl_lib.claims.rule`: a reading holds or fails by 2 standard errors, else
inconclusive):

1. ``specialisation_boundary`` [calibrated setting, ``M = n_experts``, router trained
throughout]: the
   first-sweep prediction ``eta c^2 >= gain_star``
   (:mod:`moecl_lib.theory.specialisation`) against simulation. Readings: purity right
   after ``T1`` is ``<= 0.5`` at ``0.75 gain_star`` and ``>= 0.75`` at ``1.3 gain_star``
   (signal scale ``c = 5``), also at the routing-noise ranges ``lams`` (the prediction
   has no ``lambda``; the naive drift-versus-noise boundary scales with it); the half
   time of the repeat rate at ``2 gain_star`` is within 25 % of the predicted onset
   round; on the phase map, the gain at which purity crosses 0.6 (rows ``c >= 2``)
   divided by ``gain_star`` lies in ``[0.8, 1.25]`` (mean over rows, s.e. over rows).
2. ``prop2_mechanism`` [regime ``T1 < t2``: ``c = p2_scale``, ``eta = p2_eta``, ``T1 =
p2_T1``, otherwise
   calibrated]: the load-balancing share of the never-frozen router's excess error,
   ``[G_T(never, alpha) - G_T(gap, alpha)] - [G_T(never, 0) - G_T(gap, 0)] >= 0``
   (paired runs); the excess itself ``G_T(never) - G_T(gap) >= 0`` (the direction of
   Prop. 2); and, in an *emulation* with the locality gradient switched off after ``T1``
   (:mod:`moecl_lib.analysis.aux_only`, not the engine), the gate spread at ``T`` is
   ``<= lambda`` (gates equalise under load balancing alone).
3. ``termination_gamma`` [per setting]: the gap rule differs from ``freeze_at_T1``
(paired runs: the
   final errors differ) in ``>= 5 %`` of the runs at the default ``Gamma =
   sigma0^1.25``. The quantity ``gamma_differ_<setting>`` is the smallest ``Gamma`` of
   the grid at which it does.

Heavy profiles read the study grids ``grids/specialisation_boundary.yml`` and
``grids/gamma_termination.yml`` (``boundary_grid``, ``gamma_grid``: paths of their
``grid.nc``, or the grid files themselves, run here); without them small versions are
simulated.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from moecl_lib.analysis.aux_only import simulate_aux_only
from moecl_lib.analysis.calibration import setting_config
from moecl_lib.analysis.onset import repeat_rate
from moecl_lib.analysis.routing import specialisation
from moecl_lib.claims.estimators import reading_of
from moecl_lib.claims.record import Record
from moecl_lib.claims.record import outcome_texts as outcome_texts  # re-exported
from moecl_lib.claims.resampling import bootstrap_se, onset_estimate
from moecl_lib.claims.rule import ClaimCheck, Quantity, Reading, estimate
from moecl_lib.linear.engine import simulate
from moecl_lib.theory import specialisation as th

CHAPTER = "specialisation_boundary"
SETTINGS: tuple[str, ...] = ("calibrated", "recalled")
LOW, HIGH, CROSS = 0.5, 0.75, 0.6  # purity thresholds of part 1
BELOW, ABOVE, ONSET_AT, ONSET_TOL = 0.75, 1.3, 2.0, 0.25
RATIO_RANGE = (0.8, 1.25)
DIFFER = (
    0.05  # share of runs in which the gap rule must differ from freeze_at_T1 (part 3)
)


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (quick-profile defaults)."""

    n_experts: int = 20
    n_runs: int = 32
    seed: int = 0
    T1: int = 300
    lams: tuple[float, ...] = (0.15, 0.6)
    map_scales: tuple[float, ...] = (1.414214, 2.0, 4.0, 8.0)
    map_etas: tuple[float, ...] = (0.0625, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
    map_runs: int = 8
    p2_scale: float = 14.142136
    p2_eta: float = 0.125
    p2_T1: int = 150
    p2_T: int = 1200
    p2_runs: int = 32
    aux_runs: int = 4
    gammas: tuple[float, ...] = (0.318, 1.0, 10.0)
    gamma_T: int = 800
    gamma_runs: int = 8
    m_values: tuple[int, ...] = (10, 40)
    m_runs: int = 8
    m_multiples: tuple[float, ...] = (
        0.5,
        0.6,
        0.7,
        0.8,
        0.9,
        1.0,
        1.15,
        1.3,
        1.5,
        1.75,
        2.0,
        2.5,
    )
    boundary_grid: str | None = None
    gamma_grid: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "m_values", tuple(int(v) for v in self.m_values))
        for name in ("map_scales", "map_etas", "gammas", "m_multiples", "lams"):
            object.__setattr__(self, name, tuple(float(v) for v in getattr(self, name)))


@dataclass
class Result:
    """Output of :func:`run`: quantities, checks and the arrays behind the figures."""

    params: Params
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    arrays: dict[str, Any]
    configs: dict[str, Any]
    wall_time_s: float
    seeds: list[int] = field(default_factory=list)

    @property
    def record(self) -> Record:
        return Record(
            chapter=CHAPTER,
            params=asdict(self.params),
            quantities=self.quantities,
            checks=self.checks,
            configs=self.configs,
            seeds=self.seeds,
            wall_time_s=self.wall_time_s,
        )

    def quantity(self, name: str) -> Quantity:
        return next(q for q in self.quantities if q.name == name)


def _exact(name: str, value: float, label: str = "") -> Quantity:
    return Quantity(name, float(value), 0.0, 1, "exact", 0.0, label)


def grid_dataset(path: str, grid: str) -> Any:
    """A study grid's dataset. ``path`` is its ``grid.nc``, or a grid file (``.yml``),
    which is run here through :func:`moecl_lib.sweep.execute.run_grid` (in this process;
    finished cells under ``results/sweeps/<name>`` of the repository are re-used).
    Relative paths are taken from the repository root."""
    from pathlib import Path

    import xarray as xr

    from moecl_lib.paths import find_repo_root

    root = find_repo_root()
    file = Path(path) if Path(path).is_absolute() else root / path
    if file.suffix in (".yml", ".yaml"):
        from moecl_lib.sweep.execute import run_grid
        from moecl_lib.sweep.grid import load_grid

        spec = load_grid(file)
        out = root / "results" / "sweeps" / spec.name
        return run_grid(spec, out, scheduler="inline", progress=False)
    if not file.is_file():
        raise FileNotFoundError(
            f"{path}: run `moecl sweep {grid}` first, pass the grid file itself, "
            "or set the path to None"
        )
    return xr.open_dataset(file, engine="scipy")


# --------------------------------------------------------------------------------------
# part 1


def gain_star(p: Params) -> float:
    """Predicted boundary of ``eta c^2`` for the calibrated problem size (``sigma0, d,
    s`` of the setting)."""
    cfg = setting_config("calibrated", p.n_experts)
    return th.critical_gain(p.n_experts, cfg.sigma0, cfg.d, cfg.s, cfg.beta)


def _line_config(p: Params, gain: float, T1: int, T: int, c: float = 5.0, **kw: Any):
    return setting_config(
        "calibrated",
        p.n_experts,
        signal_scale=c,
        eta=gain / c**2,
        T1=T1,
        T=T,
        termination="never",
        n_runs=p.n_runs,
        seed=p.seed,
        streams="per_run",
        **kw,
    )


def boundary_map(p: Params) -> dict[str, np.ndarray]:
    """Purity right after ``T1`` on the (c, eta) map: from ``p.boundary_grid`` or
    simulated (small)."""
    if p.boundary_grid:
        ds = grid_dataset(p.boundary_grid, "grids/specialisation_boundary.yml")
        return {
            "c": ds.signal_scale.values.astype(float),
            "eta": ds.eta.values.astype(float),
            "never": ds.purity_early.sel(termination="never").values,
            "freeze": ds.purity_early.sel(termination="freeze_at_T1").values,
            "T1": np.array(600),
        }
    cs, etas = np.array(p.map_scales), np.array(p.map_etas)
    out = {k: np.zeros((cs.size, etas.size, p.map_runs)) for k in ("never", "freeze")}
    for i, c in enumerate(cs):
        for j, eta in enumerate(etas):
            for key, term in (("never", "never"), ("freeze", "freeze_at_T1")):
                cfg = setting_config(
                    "calibrated",
                    p.n_experts,
                    signal_scale=float(c),
                    eta=float(eta),
                    T1=p.T1,
                    T=p.T1 + 200,
                    termination=term,
                    n_runs=p.map_runs,
                    seed=p.seed + 1,
                    streams="per_run",
                )
                out[key][i, j] = specialisation(simulate(cfg), window=200).purity_early
    return {"c": cs, "eta": etas, **out, "T1": np.array(p.T1)}


def crossing_gains(c: np.ndarray, eta: np.ndarray, purity: np.ndarray) -> np.ndarray:
    """Per row ``c``: gain ``eta c^2`` at which the mean purity first reaches
    :data:`CROSS` (log-linear interpolation between cells; NaN when the row starts above
    it or never reaches it)."""
    mean = purity.mean(axis=-1)
    out = np.full(c.size, np.nan)
    for i, ci in enumerate(c):
        gains, row = eta * ci**2, mean[i]
        hit = np.flatnonzero(row >= CROSS)
        if hit.size == 0 or hit[0] == 0:
            continue
        j = hit[0]
        lg = np.log(gains[j - 1 : j + 1])
        frac = (CROSS - row[j - 1]) / (row[j] - row[j - 1])
        out[i] = float(np.exp(lg[0] + frac * (lg[1] - lg[0])))
    return out


def onset_quantities(
    p: Params, g_star: float
) -> tuple[dict[str, Quantity], np.ndarray]:
    """Half time of the repeat rate at ``2 gain_star`` and ``1.3 gain_star`` against the
    prediction."""
    M = p.n_experts
    N = setting_config("calibrated", M).n_tasks
    res = simulate(_line_config(p, ONSET_AT * g_star, 10 * p.T1, 300))
    rate = repeat_rate(res.experts, res.tasks)
    pred = th.onset_round(ONSET_AT * g_star, g_star, M, N)
    near = simulate(_line_config(p, ABOVE * g_star, 10 * p.T1, 600))
    sim, sim_near = onset_estimate(res), onset_estimate(near)
    q = [
        Quantity("onset_sim", *sim, "estimate", 1.0, "half time of the repeat rate"),
        _exact("onset_pred", pred, "predicted onset round"),
        Quantity(
            "onset_relerr",
            abs(sim[0] - pred) / pred,
            sim[1] / pred,
            sim[2],
            "estimate",
            1.0 / pred,
        ),  # fmt: skip
        Quantity("onset_sim_near", *sim_near, "estimate", 1.0),
        _exact("onset_pred_near", th.onset_round(ABOVE * g_star, g_star, M, N)),
    ]
    return {x.name: x for x in q}, rate


def _rows_ratio(
    mp: dict[str, np.ndarray], g_star: float, rows: np.ndarray, runs: np.ndarray
) -> float:
    """Mean boundary / gain_star over the map rows ``rows`` (a mask of ``c``), from the
    runs ``runs`` of every cell (NaN without a crossing)."""
    cr = crossing_gains(mp["c"][rows], mp["eta"], mp["never"][rows][..., runs])
    return float(np.nanmean(cr) / g_star) if np.isfinite(cr).any() else math.nan


def map_ratios(
    mp: dict[str, np.ndarray], cross: np.ndarray, g_star: float, M: int
) -> dict:
    """Map boundary / gain_star: rows ``c >= 2``, rows ``c < 2``, and with the heuristic
    gain ``eta E|xbar|^2`` (all rows); NaN quantities without data."""
    cfg = setting_config("calibrated", M)
    norm2 = th.input_norm2(mp["c"], cfg.beta, cfg.s, cfg.d, cfg.sigma_t)
    rows = {
        "boundary_ratio": (cross[mp["c"] >= 2.0], "boundary / gain* (rows c >= 2)"),
        "boundary_ratio_small_c": (
            cross[mp["c"] < 2.0],
            "boundary / gain* (rows c < 2)",
        ),
        "boundary_ratio_input_norm": (
            cross / mp["c"] ** 2 * norm2,
            "boundary / gain*, gain eta E|xbar|^2 (heuristic)",
        ),
    }
    masks = {"boundary_ratio": mp["c"] >= 2.0, "boundary_ratio_small_c": mp["c"] < 2.0}
    out = {}
    for name, (x, label) in rows.items():
        x = x[np.isfinite(x)] / g_star
        if x.size == 1 and name != "boundary_ratio_input_norm":
            # one row: the s.e. over runs, by the bootstrap
            R, mask = mp["never"].shape[-1], masks[name]
            se = bootstrap_se(lambda i, m=mask: _rows_ratio(mp, g_star, m, i), R)
            out[name] = Quantity(name, float(x[0]), se, R, label=label)
        else:
            out[name] = (
                estimate(name, x, label=label)
                if x.size
                else Quantity(name, math.nan, label=label)
            )
    return out


def boundary_part(p: Params) -> tuple[list[Quantity], ClaimCheck, dict[str, Any]]:
    """Part 1: purity on both sides of the boundary, onset round, boundary on the
    map."""
    g_star, M = gain_star(p), p.n_experts
    q = {
        "gain_star": _exact("gain_star", g_star, "predicted boundary of eta c^2"),
        "push_star": _exact("push_star", th.critical_push(M), "critical push G*(M)"),
    }
    lam_tags = [("", {})] + [(f"_lam{i}", {"lam": v}) for i, v in enumerate(p.lams, 1)]
    for tag, kw in lam_tags:
        for name, mult in (("below", BELOW), ("above", ABOVE)):
            cfg = _line_config(p, mult * g_star, p.T1, p.T1 + 200, **kw)
            sp = specialisation(simulate(cfg), window=200)
            label = f"purity at {mult} gain*, lambda = {cfg.lam:g}"
            q[f"purity_{name}{tag}"] = estimate(
                f"purity_{name}{tag}", sp.purity_early, label=label
            )
    onset, rate = onset_quantities(p, g_star)
    q.update(onset)
    mp = boundary_map(p)
    cross = crossing_gains(mp["c"], mp["eta"], mp["never"])
    q.update(map_ratios(mp, cross, g_star, M))
    ratio = q["boundary_ratio"]
    readings = [
        reading_of("below", f"purity at {BELOW} gain*", q["purity_below"], LOW, "<="),
        reading_of("above", f"purity at {ABOVE} gain*", q["purity_above"], HIGH, ">="),
        *[
            reading_of(
                f"{name}{tag}",
                q[f"purity_{name}{tag}"].label,
                q[f"purity_{name}{tag}"],
                thr,
                sense,
            )
            for tag, _ in lam_tags[1:]
            for name, thr, sense in (("below", LOW, "<="), ("above", HIGH, ">="))
        ],
        reading_of(
            "onset", "onset round: relative error", q["onset_relerr"], ONSET_TOL, "<="
        ),
        reading_of("map_low", "map boundary / gain*", ratio, RATIO_RANGE[0], ">="),
        reading_of("map_high", "map boundary / gain*", ratio, RATIO_RANGE[1], "<="),
    ]
    arrays = {
        "map": mp,
        "cross": cross,
        "onset_rate": rate,
        "onset_gain": ONSET_AT * g_star,
    }
    check = ClaimCheck("specialisation_boundary", "calibrated", readings)
    return list(q.values()), check, arrays


def m_scan(p: Params) -> tuple[list[Quantity], dict[str, Any]]:
    """Other numbers of experts: purity after ``T1 = 30 M`` along ``gain = x
    gain_star(M)`` (``c = 5``) and the ratio ``gain at purity 0.6 / gain_star(M)``
    (quantities only; NaN without a crossing)."""
    quantities, arrays = [], {}
    mult = np.array(p.m_multiples)
    for M in p.m_values:
        cfg = setting_config("calibrated", M)
        g_star = th.critical_gain(M, cfg.sigma0, cfg.d, cfg.s, cfg.beta)
        pur = np.zeros((mult.size, p.m_runs))
        for i, x in enumerate(mult):
            q = dict(n_experts=M, n_runs=p.m_runs, seed=p.seed + 4)
            cfg_i = _line_config(Params(**q), x * g_star, 30 * M, 30 * M + 200)
            pur[i] = specialisation(simulate(cfg_i), window=200).purity_early

        def ratio_of(i: np.ndarray, pur: np.ndarray = pur) -> float:
            return float(crossing_gains(np.array([1.0]), mult, pur[None][..., i])[0])

        runs = np.arange(p.m_runs)
        quantities.append(
            Quantity(
                f"m_ratio_M{M}",
                ratio_of(runs),
                bootstrap_se(ratio_of, p.m_runs),
                p.m_runs,
                label=f"boundary / gain_star at M = {M}",
            )  # fmt: skip
        )
        quantities.append(_exact(f"m_gain_star_M{M}", g_star, f"gain_star at M = {M}"))
        arrays[f"m_purity_M{M}"] = pur
    return quantities, arrays


# --------------------------------------------------------------------------------------
# part 2


def p2_config(p: Params, **kw: Any):
    base = dict(signal_scale=p.p2_scale, eta=p.p2_eta, T1=p.p2_T1, T=p.p2_T)
    base.update(n_runs=p.p2_runs, seed=p.seed + 2, streams="per_run")
    base.update(kw)
    return setting_config("calibrated", p.n_experts, **base)


def t2_of(cfg) -> int:
    """``t2 = ceil(eta^-1 sigma0^-0.75 M)`` (SPEC §4.7)."""
    return int(math.ceil(cfg.n_experts / (cfg.eta * cfg.sigma0**0.75)))


def p2_part(p: Params) -> tuple[list[Quantity], ClaimCheck, dict[str, Any]]:
    """Part 2: load-balancing share of the excess error (paired) and gate spread under
    load balancing only."""
    cfg = p2_config(p)
    G = {}
    for a in (cfg.alpha, 0.0):
        for term in ("never", "gap"):
            G[(a, term)] = simulate(p2_config(p, alpha=a, termination=term)).G[:, -1]
    ex = G[(cfg.alpha, "never")] - G[(cfg.alpha, "gap")]
    ex0 = G[(0.0, "never")] - G[(0.0, "gap")]
    q = {
        "p2_t2": _exact("p2_t2", t2_of(cfg), "t2 of the regime"),
        "p2_T1": _exact("p2_T1", cfg.T1_value, "T1 of the regime"),
        "p2_excess": estimate("p2_excess", ex, label="G_T(never) - G_T(gap)"),
        "p2_excess0": estimate("p2_excess0", ex0, label="same with alpha = 0"),
        "p2_lb": estimate("p2_lb", ex - ex0, label="load-balancing share"),
    }
    aux_cfg = p2_config(p, termination="never", n_runs=p.aux_runs)
    both = simulate_aux_only(aux_cfg, None)
    aux = simulate_aux_only(aux_cfg, p.p2_T1)
    i1 = int(np.searchsorted(aux.rounds, p.p2_T1))
    q["aux_spread_T1"] = estimate("aux_spread_T1", aux.spread()[:, i1])
    q["aux_spread_T"] = estimate("aux_spread_T", aux.spread()[:, -1])
    g = aux.gates[:, i1]  # (R, N, M): gates on the task signals at T1
    e = np.exp(g - g.max(axis=-1, keepdims=True))
    pmax = (e / e.sum(axis=-1, keepdims=True)).max(axis=-1).mean(axis=-1)
    spread_T1 = aux.spread()[:, i1]

    def log_bound(i: np.ndarray) -> float:
        b = th.aux_equalisation_rounds(
            float(spread_T1[i].mean()),
            cfg.eta,
            cfg.alpha,
            cfg.n_experts,
            cfg.signal_scale,
            cfg.beta,
        )
        return math.log10(b)

    n_aux = spread_T1.size
    q["aux_bound_log10"] = Quantity(
        "aux_bound_log10", log_bound(np.arange(n_aux)), bootstrap_se(log_bound, n_aux),
        n_aux, label="log10 rounds: aux-only lower bound",
    )  # fmt: skip
    q["aux_pmax_T1"] = estimate(
        "aux_pmax_T1", pmax, label="largest softmax probability at T1"
    )
    q["aux_drop"] = estimate("aux_drop", aux.spread()[:, i1] - aux.spread()[:, -1])
    readings = [
        Reading("regime", "T1 before t2", cfg.T1_value, t2_of(cfg), 0.0, "<="),
        reading_of(
            "lb_excess", "load-balancing share of the excess", q["p2_lb"], 0.0, ">="
        ),
        reading_of("excess", "G_T(never) - G_T(gap)", q["p2_excess"], 0.0, ">="),
        reading_of(
            "equalise",
            "gate spread at T, load balancing only",
            q["aux_spread_T"],
            cfg.lam,
            "<=",
        ),
    ]
    arrays = {
        "aux_rounds": aux.rounds,
        "spread_aux": aux.spread(),
        "spread_both": both.spread(),
    }
    return (
        list(q.values()),
        ClaimCheck("prop2_mechanism", "calibrated", readings),
        arrays,
    )


# --------------------------------------------------------------------------------------
# part 3


def gamma_table(p: Params) -> dict[str, Any]:
    """Paired final errors of ``gap`` and ``freeze_at_T1`` per setting and Gamma, and
    the gap rule's T2."""
    if p.gamma_grid:
        ds = grid_dataset(p.gamma_grid, "grids/gamma_termination.yml")
        return {
            "gamma": ds.gamma.values.astype(float),
            "settings": [str(s) for s in ds.setting.values],
            "G_gap": ds.G_T.sel(termination="gap").values,
            "G_freeze": ds.G_T.sel(termination="freeze_at_T1").values,
            "T2": ds.T2.sel(termination="gap").values,
        }
    gam = np.array(p.gammas)
    shape = (len(SETTINGS), gam.size, p.gamma_runs)
    out = {k: np.zeros(shape) for k in ("G_gap", "G_freeze", "T2")}
    for i, s in enumerate(SETTINGS):
        for j, g in enumerate(gam):
            for key, term in (("G_gap", "gap"), ("G_freeze", "freeze_at_T1")):
                cfg = setting_config(
                    s,
                    p.n_experts,
                    gamma=float(g),
                    termination=term,
                    T=p.gamma_T,
                    n_runs=p.gamma_runs,
                    seed=p.seed + 3,
                    streams="per_run",
                )
                res = simulate(cfg)
                out[key][i, j] = res.G[:, -1]
                if term == "gap":
                    out["T2"][i, j] = res.T2
    return {"gamma": gam, "settings": list(SETTINGS), **out}


def gamma_part(p: Params) -> tuple[list[Quantity], list[ClaimCheck], dict[str, Any]]:
    """Part 3: share of runs in which the gap rule differs from freezing at T1, per
    setting and Gamma."""
    tab = gamma_table(p)
    differ = np.abs(tab["G_gap"] - tab["G_freeze"]) > 1e-12
    share = differ.mean(axis=-1)
    gam = tab["gamma"]
    default = setting_config("calibrated", p.n_experts).gamma_value
    j0 = int(np.argmin(np.abs(gam - default)))
    quantities, checks = [], []
    for i, s in enumerate(tab["settings"]):
        q = estimate(f"gamma_share_{s}", differ[i, j0].astype(float))
        hit = np.flatnonzero(share[i] >= DIFFER)
        first = float(gam[hit[0]]) if hit.size else math.inf
        quantities += [
            q,
            _exact(f"gamma_differ_{s}", first, f"smallest Gamma that differs ({s})"),
        ]
        statement = (
            f"share of runs where gap differs from freeze_at_T1 at Gamma = {gam[j0]:g}"
        )
        checks.append(
            ClaimCheck(
                "termination_gamma",
                s,
                [reading_of("differs", statement, q, DIFFER, ">=")],
            )
        )
    return (
        quantities,
        checks,
        {"gamma": gam, "share": share, "settings": tab["settings"], "T2": tab["T2"]},
    )


def run(params: Params = Params()) -> Result:
    """Run the three parts and collect quantities, checks and figure data."""
    start = time.perf_counter()
    q1, c1, a1 = boundary_part(params)
    q2, c2, a2 = p2_part(params)
    q3, c3, a3 = gamma_part(params)
    q4, a4 = m_scan(params)
    configs = {
        "line": _line_config(
            params, gain_star(params), params.T1, params.T1 + 200
        ).to_dict(),
        "p2": p2_config(params).to_dict(),
    }
    return Result(
        params=params,
        quantities=q1 + q2 + q3 + q4,
        checks=[c1, c2, *c3],
        arrays={**a1, **a2, **a3, **a4},
        configs=configs,
        wall_time_s=time.perf_counter() - start,
        seeds=[params.seed],
    )
