"""Robustness matrix (issue 16): do the linear verdicts hinge on one modelling choice?

**What is varied.** Every element of the fidelity ledger tagged ``[R-M]``, ``[R-L]`` or
``[C]`` that shapes the router (and the locality form, ledger A10) gets at least two
alternatives where it has them (binary elements one), each changed *alone* from a
base setting, the calibrated or the recalled one
(:mod:`moecl_lib.analysis.calibration`): :data:`CHOICES`. An alternative is a rule
relative to the base (``eta x 2``, ``Gamma x 0.5``, ``T1 x 1.5``, another
``lb_loss``, ...), so each has explicit overrides for both bases
(:func:`overrides`). ``T1`` is pinned to the base's value unless the choice is about
``T1`` (the recalled formula would otherwise move with ``eta``).

**What is checked.** In every (base, choice) cell the claims P1, P2, P3a, P3b of
:mod:`moecl_lib.claims.calibration` (its readings, reused) and ``F2i``, the cheap
part of Figure 2 (i): the single expert ends with the highest error,
``G_T(M=1) / G_T`` and ``F_T(M=1) / F_T >= 1.1`` against the higher of the two MoE
members (paired ratios: per-run streams give both the same task pools and streams).
A cell's outcome is that of the conjunction of its readings (holds when every reading
holds, fails when one fails, else inconclusive; :func:`conjunction`), which is the
outcome of its *binding* reading, the one with the smallest margin (:func:`binding`).

**Claim checks.** ``robust_<claim>`` [base]: the claim holds whatever the choice. Its
readings are the binding readings of the claim in every cell of the base, so under the
written rule (:mod:`moecl_lib.claims.rule`) it is *reproduced* when the claim holds in
every cell, *partly* when it holds in some and fails in others (it hinges on a
choice), *not reproduced* when it fails somewhere and holds nowhere.

All configurations use ``streams="per_run"`` and one seed: the cells of a base share
every random number (paired across choices).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.calibration import ClaimThresholds, setting_config
from moecl_lib.claims.calibration import (
    Cell,
    MemberRuns,
    Simulator,
    conjunction,
    p1_readings,
    p2_readings,
    p3a_readings,
    p3b_readings,
    paired_ratio,
)
from moecl_lib.claims.record import ChapterResult
from moecl_lib.claims.rule import ClaimCheck, Outcome, Quantity, Reading
from moecl_lib.config import ExperimentConfig

CHAPTER = "robustness"
SETTINGS: tuple[str, ...] = ("calibrated", "recalled")
CLAIMS: tuple[str, ...] = ("P1", "P2", "P3a", "P3b", "F2i")
CHECK_IDS = {c: f"robust_{c.lower()}" for c in CLAIMS}
HIGHEST = 1.1  # Figure 2 (i): single expert above the highest MoE curve by 10 %
PREFIX = {"calibrated": "cal", "recalled": "rec"}


@dataclass(frozen=True)
class Choice:
    """One alternative of one ledger element: ``changes`` are ``(field, op, value)``
    with ``op`` ``"="`` (set) or ``"x"`` (times the base's effective value); ``tag`` is
    the element's provenance tag in the fidelity ledger (the alternative itself is our
    choice, ``[C]``)."""

    key: str
    element: str
    label: str
    tag: str
    changes: tuple[tuple[str, str, Any], ...] = ()


def _c(key: str, element: str, label: str, tag: str, *changes: Any) -> Choice:
    return Choice(key, element, label, tag, tuple(changes))


_TERM, _T1, _AUX = "termination rule, Γ", "T1 rule", "aux gradient"
_LB, _NOISE, _SIG = "load-balancing form", "noise law", "signal direction"
#: The base (no change) and the alternatives, in the order of the figure's columns.
CHOICES: tuple[Choice, ...] = (
    _c("base", "base", "base", "-"),
    _c(
        "freeze_T1",
        _TERM,
        "freeze at T1",
        "[R-L]/[C]",
        ("termination", "=", "freeze_at_T1"),
    ),
    _c("gamma_half", _TERM, "Γ ×0.5", "[R-M]/[C]", ("gamma", "x", 0.5)),
    _c("gamma_x4", _TERM, "Γ ×4", "[R-M]/[C]", ("gamma", "x", 4.0)),
    _c("T1_half", _T1, "T1 ×0.5", "[R-M]", ("T1", "x", 0.5)),
    _c("T1_x1p5", _T1, "T1 ×1.5", "[R-M]", ("T1", "x", 1.5)),
    _c("aux_flip", _AUX, "other aux gradient", "[R-M]/[C]", ("aux_grad", "=", "flip")),
    _c("lb_switch", _LB, "Switch f·P", "[R-M]", ("lb_loss", "=", "switch")),
    _c("lb_entropy", _LB, "entropy", "[R-M]", ("lb_loss", "=", "entropy")),
    _c("loc_l2sq", "locality form", "‖Δ‖²", "[R-H] A10", ("locality", "=", "l2sq")),
    _c("noise_gauss", _NOISE, "Gaussian", "[R-M]", ("route_noise", "=", "gaussian")),
    _c("noise_gumbel", _NOISE, "Gumbel", "[R-M]", ("route_noise", "=", "gumbel")),
    _c("lam_third", "λ", "λ ×1/3", "[R-M]", ("lam", "x", 1 / 3)),
    _c("lam_x3", "λ", "λ ×3", "[R-M]", ("lam", "x", 3.0)),
    _c("c_low", "signal scale", "c ×0.6", "[C]", ("signal_scale", "x", 0.6)),
    _c("c_high", "signal scale", "c ×1.6", "[C]", ("signal_scale", "x", 1.6)),
    _c("sig_random", _SIG, "random v", "[R-M]/[R-L]", ("signal", "=", "random")),
    _c(
        "sig_ortho",
        _SIG,
        "orthonormal v",
        "[R-M]/[R-L]",
        ("signal", "=", "orthonormal"),
    ),
    _c("eta_half", "η", "η ×0.5", "[R-M]", ("eta", "x", 0.5)),
    _c("eta_x2", "η", "η ×2", "[R-M]", ("eta", "x", 2.0)),
    _c("alpha_half", "α", "α ×0.5", "[R-M]", ("alpha", "x", 0.5)),
    _c("alpha_x2", "α", "α ×2", "[R-M]", ("alpha", "x", 2.0)),
    _c("clusters_3", "task clusters", "K = 3", "[C]/[R-L]", ("n_clusters", "=", 3)),
    _c("clusters_2", "task clusters", "K = 2", "[C]/[R-L]", ("n_clusters", "=", 2)),
)


def choice(key: str) -> Choice:
    """The choice called ``key``."""
    return next(c for c in CHOICES if c.key == key)


def overrides(ch: Choice, base: ExperimentConfig) -> dict[str, Any]:
    """Config overrides of ``ch`` relative to ``base`` (explicit values)."""
    out: dict[str, Any] = {}
    for name, op, value in ch.changes:
        if name == "aux_grad":
            out[name] = "no_decay" if base.aux_grad == "decay" else "decay"
        elif op == "=":
            out[name] = value
        elif name == "T1":
            out[name] = int(math.ceil(base.T1_value * value))
        elif name == "gamma":
            out[name] = base.gamma_value * value
        else:
            out[name] = getattr(base, name) * value
    return out


@dataclass(frozen=True)
class Params:
    """The notebook's ``parameters`` cell (quick-profile defaults)."""

    n_experts: int = 20
    T: int = 1200
    n_runs: int = 64
    seed: int = 0
    choices: tuple[str, ...] = tuple(c.key for c in CHOICES)

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(str(k) for k in self.choices))
        unknown = sorted(set(self.choices) - {c.key for c in CHOICES})
        if unknown or "base" not in self.choices:
            raise ValueError(f"choices: unknown {unknown} or no 'base'")


def base_config(p: Params, setting: str) -> ExperimentConfig:
    """The base of a setting: ``T1`` pinned to the setting's rule at ``M``."""
    cfg = setting_config(
        setting, p.n_experts, T=p.T, n_runs=p.n_runs, seed=p.seed, streams="per_run"
    )
    return cfg.replace(T1=cfg.T1_value)


# ------------------------------------------------------------------------- cells


def f2i_readings(
    gap: MemberRuns, never: MemberRuns, single: MemberRuns
) -> tuple[Reading, ...]:
    """Figure 2 (i): the single expert's final errors over the higher MoE member's."""
    out = []
    for key, label in (("G_T", "G_T"), ("F_T", "F_T")):
        top = max((gap, never), key=lambda m: float(np.mean(getattr(m, key))))
        which = "gap" if top is gap else "never"
        est = paired_ratio(getattr(single, key), getattr(top, key))
        out.append(
            Reading(
                f"F2i_{key}",
                f"F2i: {label}(M=1) / {label}({which}) ≥ {HIGHEST:g}",
                est[0],
                HIGHEST,
                est[1],
            )
        )
    return tuple(out)


def run_choice(
    sim: Simulator, ch: Choice, th: ClaimThresholds = ClaimThresholds()
) -> Cell:
    """Simulate one (base, choice) cell: the terminating member (``gap`` unless the
    choice sets the termination), ``never`` and the single expert; read every claim."""
    ov = overrides(ch, sim.base)
    gap = sim.member(dict({"termination": "gap"}, **ov), None)
    # Gamma, T1 and the termination rule do not act on a router that is never frozen
    same = {k: v for k, v in ov.items() if k not in ("termination", "gamma", "T1")}
    never = sim.member(dict(same, termination="never"), None)
    single = sim.member(dict(same, n_experts=1), None)
    readings = {
        "P1": p1_readings(gap, th),
        "P2": p2_readings(gap, never, th),
        "P3a": p3a_readings(gap, single, th),
        "P3b": p3b_readings(gap, th),
        "F2i": f2i_readings(gap, never, single),
    }
    return Cell({"choice": ch.key, **ov}, gap, never, single, readings)


def binding(readings: tuple[Reading, ...]) -> Reading:
    """The reading with the smallest margin: its outcome is the conjunction's."""
    return min(readings, key=lambda r: r.z)


# ------------------------------------------------------------------------- result


@dataclass
class Result(ChapterResult):
    """Output of :func:`run`: the cells per base and choice, quantities and checks."""

    chapter = CHAPTER

    params: Params
    cells: dict[str, dict[str, Cell]]
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    wall_time_s: float
    thresholds: ClaimThresholds

    def outcome(self, setting: str, key: str, claim: str) -> Outcome:
        """Outcome of ``claim`` in the cell (``setting``, choice ``key``)."""
        return conjunction(self.cells[setting][key].readings[claim])

    def choices(self) -> list[Choice]:
        """The simulated choices, in the order of :data:`CHOICES`."""
        return [c for c in CHOICES if c.key in self.params.choices]


def run(params: Params = Params()) -> Result:
    """Simulate every (base, choice) cell and derive quantities and claim checks."""
    start = time.perf_counter()
    th = ClaimThresholds()
    cells: dict[str, dict[str, Cell]] = {}
    configs: dict[str, Any] = {}
    for setting in SETTINGS:
        sim = Simulator(base_config(params, setting))
        chosen = [c for c in CHOICES if c.key in params.choices]
        cells[setting] = {c.key: run_choice(sim, c, th) for c in chosen}
        configs.update({f"{setting}_{k}": v for k, v in sim.configs().items()})
    res = Result(params, cells, [], [], configs, 0.0, th)
    res.quantities = quantities(res)
    res.checks = robust_checks(res)
    res.wall_time_s = time.perf_counter() - start
    return res


def robust_checks(res: Result) -> list[ClaimCheck]:
    """``robust_<claim>`` per base: the binding reading of the claim in every cell."""
    checks = []
    for claim in CLAIMS:
        for setting in SETTINGS:
            readings = []
            for ch in res.choices():
                r = binding(res.cells[setting][ch.key].readings[claim])
                readings.append(
                    Reading(
                        f"{ch.key}_{r.name}",
                        f"{ch.label}: {r.statement}",
                        r.estimate,
                        r.threshold,
                        r.se,
                        r.sense,
                    )
                )
            checks.append(ClaimCheck(CHECK_IDS[claim], setting, tuple(readings)))
    return checks


def quantities(res: Result) -> list[Quantity]:
    """Every reading's estimate in every cell (``<cal|rec>_<choice>_<reading>``)."""
    out: dict[str, Quantity] = {}
    for setting in SETTINGS:
        for ch in res.choices():
            cell = res.cells[setting][ch.key]
            for claim in CLAIMS:
                for r in cell.readings[claim]:
                    name = f"{PREFIX[setting]}_{ch.key}_{r.name}"
                    label = f"{setting}, {ch.label}: {r.statement}"
                    # a reading without s.e. rests on at most one run (e.g. the
                    # purity after T2 when one run froze): n = 1, not compared
                    n = cell_n(cell) if r.se > 0 else 1
                    out[name] = Quantity(name, r.estimate, r.se, n, label=label)
    return list(out.values())


def cell_n(cell: Cell) -> int:
    """Runs per member of a cell."""
    return int(cell.gap.config.n_runs)


# ------------------------------------------------------------------------- reporting


def matrix_rows(res: Result) -> list[dict[str, Any]]:
    """Tidy rows: base, choice, element, tag, claim, outcome and binding reading."""
    rows = []
    for setting in SETTINGS:
        for ch in res.choices():
            cell = res.cells[setting][ch.key]
            for claim in CLAIMS:
                r = binding(cell.readings[claim])
                rows.append(
                    dict(
                        setting=setting,
                        choice=ch.key,
                        label=ch.label,
                        element=ch.element,
                        tag=ch.tag,
                        claim=claim,
                        outcome=r.outcome,
                        reading=r.name,
                        estimate=r.estimate,
                        se=r.se,
                        threshold=r.threshold,
                        sense=r.sense,
                        margin=r.z,
                    )
                )
    return rows


def matrix_table(res: Result, setting: str) -> str:
    """Text table of one base: a row per choice, a column per claim (outcome and the
    binding margin in standard errors)."""
    from moecl_lib.claims.rule import fmt_z
    from moecl_lib.figures.tables import text_table

    short = {"holds": "holds", "fails": "FAILS", "inconclusive": "undecided"}
    body = []
    for ch in res.choices():
        cell = res.cells[setting][ch.key]
        row = [ch.key, ch.element]
        for claim in CLAIMS:
            r = binding(cell.readings[claim])
            row.append(f"{short[r.outcome]} ({fmt_z(r.z)})")
        body.append(row)
    return text_table(["choice", "element", *CLAIMS], body, align="<<")


def choices_table(base_cfgs: dict[str, ExperimentConfig]) -> str:
    """Every choice with its element, tag and overrides relative to each base."""
    from moecl_lib.figures.tables import text_table

    def fmt(ov: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in ov.items()) or "-"  # fmt: skip

    body = [
        [c.key, c.element, c.tag, *(fmt(overrides(c, b)) for b in base_cfgs.values())]
        for c in CHOICES
    ]
    head = ["choice", "element", "tag", *base_cfgs]
    return text_table(head, body, align="<<<<<")


def _decisive_change(base: Outcome, other: Outcome) -> bool:
    """``other`` is decided and differs from ``base`` (holds <-> fails; any decided
    outcome when the base itself is undecided)."""
    return other != "inconclusive" and other != base


def changed_by(res: Result, setting: str, claim: str) -> dict[str, list[str]]:
    """Elements whose alternatives turn the claim's base outcome into the opposite
    decided outcome: ``{element: [choice keys]}``."""
    base = res.outcome(setting, "base", claim)
    out: dict[str, list[str]] = {}
    for ch in res.choices()[1:]:
        if _decisive_change(base, res.outcome(setting, ch.key, claim)):
            out.setdefault(ch.element, []).append(ch.key)
    return out


def undecided_by(res: Result, setting: str, claim: str) -> list[str]:
    """Alternatives under which the claim is undecided while the base decides it."""
    if res.outcome(setting, "base", claim) == "inconclusive":
        return []
    return [
        ch.key
        for ch in res.choices()[1:]
        if res.outcome(setting, ch.key, claim) == "inconclusive"
    ]


def robustness_class(res: Result, setting: str, claim: str) -> str:
    """``robust`` (no alternative gives the opposite outcome), ``hinges on one
    element`` or ``hinges on N elements`` (undecided cells do not count)."""
    n = len(changed_by(res, setting, claim))
    if n == 0:
        return "robust"
    return "hinges on one element" if n == 1 else f"hinges on {n} elements"


def summary_line(res: Result, setting: str, claim: str) -> str:
    """Base outcome, class, the alternatives that change it and those left
    undecided."""
    base = res.outcome(setting, "base", claim)
    by = changed_by(res, setting, claim)
    cls = robustness_class(res, setting, claim)
    s = f"{setting}, {claim}: {base} at the base; {cls}"
    parts = [
        f"{element} ("
        + ", ".join(
            f"{choice(k).label} → {res.outcome(setting, k, claim)}" for k in keys
        )
        + ")"
        for element, keys in by.items()
    ]
    s += ": " + "; ".join(parts) if parts else ""
    undecided = undecided_by(res, setting, claim)
    if undecided:
        s += f"; undecided under {', '.join(choice(k).label for k in undecided)}"
    elif not by:
        s += f" ({base} under all {len(res.choices()) - 1} alternatives)"
    return s


def summary_lines(res: Result) -> list[str]:
    """:func:`summary_line` for every (base, claim)."""
    return [summary_line(res, s, c) for s in SETTINGS for c in CLAIMS]


def counts(res: Result) -> dict[str, int]:
    """Numbers of (base, claim) pairs per robustness class, of cells with the
    opposite outcome to their base and of undecided cells; for the prose."""
    out = {"robust": 0, "one": 0, "several": 0, "flips": 0, "undecided": 0}
    for setting in SETTINGS:
        for claim in CLAIMS:
            by = changed_by(res, setting, claim)
            out["robust" if not by else "one" if len(by) == 1 else "several"] += 1
            out["flips"] += sum(len(k) for k in by.values())
            out["undecided"] += sum(
                res.outcome(setting, c.key, claim) == "inconclusive"
                for c in res.choices()
            )
    return out


MARKS = {"holds": "✓", "inconclusive": "?", "fails": "✗"}
ORDER: tuple[Outcome, ...] = ("holds", "inconclusive", "fails")


def _panel(ax: Any, res: Result, setting: str, cmap: Any) -> None:
    """One base's claims x choices grid on ``ax``."""
    chs = res.choices()
    grid = np.array(
        [[ORDER.index(res.outcome(setting, c.key, k)) for c in chs] for k in CLAIMS]
    )
    ax.imshow(grid, cmap=cmap, vmin=-0.5, vmax=2.5, aspect="auto")
    for (i, j), v in np.ndenumerate(grid):
        colour = "black" if ORDER[v] == "inconclusive" else "white"
        ax.text(j, i, MARKS[ORDER[v]], ha="center", va="center", color=colour)
    ax.set_yticks(range(len(CLAIMS)), CLAIMS)
    ax.set_title(f"{setting} base setting", fontsize=10, loc="left")
    ax.grid(False)
    for j in range(1, len(chs)):
        if chs[j].element != chs[j - 1].element:
            ax.axvline(j - 0.5, color="white", lw=3)


def matrix_figure(res: Result) -> tuple[Figure, dict[str, list[Any]]]:
    """Claims x choices grid per base, coloured holds / fails / inconclusive (with
    symbols for grey-scale reading); and the CSV columns (:func:`matrix_rows`)."""
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    from moecl_lib.figures.style import OUTCOME_COLORS

    fig, axes = plt.subplots(
        len(SETTINGS), 1, figsize=(12, 2.0 + 1.6 * len(SETTINGS)), sharex=True,
        layout="constrained",
    )  # fmt: skip
    cmap = ListedColormap([OUTCOME_COLORS[o] for o in ORDER])
    axes = np.atleast_1d(axes)
    for ax, setting in zip(axes, SETTINGS):
        _panel(ax, res, setting, cmap)
    chs = res.choices()
    axes[-1].set_xticks(
        range(len(chs)), [c.label for c in chs], rotation=60, ha="right"
    )
    handles = [Patch(color=OUTCOME_COLORS[o], label=f"{MARKS[o]} {o}") for o in ORDER]
    fig.legend(handles=handles, loc="outside upper right", ncols=3, fontsize=9)
    rows = matrix_rows(res)
    return fig, {k: [r[k] for r in rows] for k in rows[0]}


def member_stats(res: Result, setting: str) -> list[dict[str, Any]]:
    """Per choice: purity after T1, G_T(never)/G_T(gap), G_T(gap)/G_T(M=1) (means)."""
    out = []
    for ch in res.choices():
        s = res.cells[setting][ch.key].stats()
        out.append(
            {
                "choice": ch.key,
                "purity_T1": s["purity_T1"][0],
                "never/gap": s["ratio_never_gap"][0],
                "gap/single": s["G_gap_over_single"][0],
                "frozen": s["frozen"][0],
                "uniformity": s["uniformity"][0],
            }
        )
    return out


def headline(res: Result) -> str:
    """Which (base, claim) outcomes are robust and which hinge on one or more
    elements (generated from the cells)."""
    groups: dict[str, list[str]] = {"robust": [], "one": [], "several": []}
    for setting in SETTINGS:
        for claim in CLAIMS:
            by = changed_by(res, setting, claim)
            out = res.outcome(setting, "base", claim)
            name = f"{setting} {claim} ({out})"
            if len(by) == 1:
                name = f"{setting} {claim} ({out}; {next(iter(by))})"
            groups["robust" if not by else "one" if len(by) == 1 else "several"].append(
                name
            )
    n = len(SETTINGS) * len(CLAIMS)
    parts = [
        f"{len(groups['robust'])} of the {n} (setting, claim) outcomes are turned into "
        f"the opposite outcome by none of the {len(res.choices()) - 1} alternatives"
        + (f": {', '.join(groups['robust'])}" if groups["robust"] else ""),
        f"{len(groups['one'])} are turned by the alternatives of one element only"
        + (f": {', '.join(groups['one'])}" if groups["one"] else ""),
        f"{len(groups['several'])} by those of several elements"
        + (f": {', '.join(groups['several'])}" if groups["several"] else ""),
    ]
    return "; ".join(parts)


def glue_texts(res: Result) -> dict[str, str]:
    """Texts the chapter glues for its prose: the headline, one summary per (base,
    claim), the counts and the most influential element per base."""
    out = {"headline": headline(res)}
    for line, (setting, claim) in zip(
        summary_lines(res), [(s, c) for s in SETTINGS for c in CLAIMS]
    ):
        out[f"summary_{setting}_{claim}"] = line
    n = counts(res)
    out.update({f"n_{k}": str(v) for k, v in n.items()})
    out["n_alternatives"] = str(len(res.choices()) - 1)
    out["n_pairs"] = str(len(SETTINGS) * len(CLAIMS))
    out["n_cells"] = str(len(SETTINGS) * len(res.choices()) * len(CLAIMS))
    for setting in SETTINGS:
        tally = Counter(
            e for c in CLAIMS for e, keys in changed_by(res, setting, c).items()
        )
        top = [e for e, k in tally.items() if k == max(tally.values(), default=0)]
        out[f"top_{setting}"] = (
            f"{', '.join(top)} (changes {max(tally.values())} of the {len(CLAIMS)} "
            "claims)"
            if top
            else "none: no alternative changes any claim"
        )
    return out
