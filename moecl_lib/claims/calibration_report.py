"""What the calibration chapter (:mod:`moecl_lib.claims.calibration`) shows of a
result: its tables, the sentences of its prose whose wording depends on the run, and
its two figures (phase diagram and slices, each with its CSV columns).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.calibration import CALIBRATED, phase_heatmap
from moecl_lib.claims.calibration_cells import CLAIMS, Cell, Result

#: Columns of the chapter's tables (cell statistics), besides the cell labels and
#: outcomes.
TABLE_STATS: tuple[str, ...] = (
    "purity_T1",
    "coverage",
    "ratio_never_gap",
    "G_T_gap",
    "G_T_single",
    "purity_post_T2",
    "uniformity",
)


def table_rows(
    cells: Sequence[Cell],
    labels: Sequence[str],
    stats: Sequence[str] = TABLE_STATS,
    claims: Sequence[str] = CLAIMS,
) -> list[dict[str, Any]]:
    """Rows for :func:`moecl_lib.figures.tables.table`: labels, statistic means and
    claim outcomes."""
    out = []
    for c in cells:
        row = c.row()
        out.append({k: row[k] for k in (*labels, *stats, *claims)})
    return out


def _where(cells: Sequence[Cell], claim: str, outcome: str) -> list[str]:
    return [
        f"c = {c.labels['signal_scale']:g}, η = {c.labels['eta']:g}"
        for c in cells
        if c.outcomes[claim] == outcome
    ]


def phase_sentence(result: Result) -> str:
    """Where P1, P2 and P3a hold together in the phase diagram (generated: true at any
    profile)."""
    n = len(result.phase)
    cnt = result.counts["all"]
    s = (
        f"P1, P2 and P3a all hold in {cnt['holds']} of the {n} cells, fail in "
        f"{cnt['fails']} and are undecided at this batch size "
        f"({result.params.n_runs} runs per cell) in {cnt['inconclusive']}"
    )
    parts = []
    for outcome, word in (("holds", "they hold at"), ("inconclusive", "undecided at")):
        where = _where(result.phase, "all", outcome)
        if where:
            parts.append(f"{word} {'; '.join(where)}")
    return s + (f" ({', '.join(parts)})" if parts else "")


def p2_high_gain_sentence(result: Result) -> str:
    """Never/gap ratio, purity after ``T1`` and P2 in the (up to) three cells of largest
    router gain."""
    rows = sorted((c.row() for c in result.phase), key=lambda r: r["gain"])
    top = rows[-min(3, len(rows)) :][::-1]
    vals = "; ".join(
        f"gain {r['gain']:g}: ratio {r['ratio_never_gap']:.2f}, purity "
        f"{r['purity_T1']:.2f}, P2 {r['P2']}"
        for r in top
    )
    best = max(rows, key=lambda r: r["purity_T1"])
    return (
        f"{vals} (G_T(never)/G_T(gap) and purity after T1 in the cells of largest "
        f"gain; the highest purity of the diagram, {best['purity_T1']:.2f}, is at "
        f"gain {best['gain']:g})"
    )


def p3b_sentence(result: Result) -> str:
    """Where P3b holds, and the within-set uniformity of the cells with a nearly pure
    routing."""
    n = result.counts["P3b"]["holds"]
    pure = [c.row() for c in result.phase if c.row()["purity_T1"] >= 0.85]
    s = f"P3b holds in {n} of the {len(result.phase)} cells"
    u = [r["uniformity"] for r in pure if np.isfinite(r["uniformity"])]
    if u:
        s += (
            f"; in the {len(pure)} cells whose purity after T1 is at least 0.85 the "
            f"within-set uniformity is at most {max(u):.2f}"
        )
    return s


def aux_sentence(result: Result) -> str:
    """Never/gap ratio with the decaying vs the non-decaying aux gradient at the
    calibrated signal scale."""
    c0 = CALIBRATED["signal_scale"]
    by = {c.labels["aux_grad"]: c for c in result.aux if c.labels["signal_scale"] == c0}
    if set(by) != {"decay", "no_decay"}:
        return "the calibrated signal scale is not in the aux-gradient slice"
    d, n = (by[a].stats()["ratio_never_gap"] for a in ("decay", "no_decay"))
    return (
        f"at c = {c0:g} the ratio G_T(never)/G_T(gap) is {d[0]:.2f} ± {d[1]:.2f} "
        f"with the literal decaying gradient (P2 {by['decay'].outcomes['P2']}) and "
        f"{n[0]:.2f} ± {n[1]:.2f} without decay (P2 {by['no_decay'].outcomes['P2']})"
    )


def alpha_sentence(result: Result) -> str:
    """The excess error of never freezing at ``alpha = 0`` vs the calibrated ``alpha``,
    and P1 at the largest ``alpha`` of the slice (generated: true at any profile)."""
    by = {c.labels["alpha"]: c for c in result.alpha}
    a0 = CALIBRATED["alpha"]
    parts = []
    if 0.0 in by and a0 in by:
        e0 = by[0.0].stats()["ratio_never_gap"][0] - 1
        ec = by[a0].stats()["ratio_never_gap"][0] - 1
        parts.append(
            f"the excess error of the never-frozen router, G_T(never)/G_T(gap) − 1, is "
            f"{e0:.2f} without load balancing (α = 0) against {ec:.2f} at α = {a0:g}"
        )
    top = max(by)
    if top > a0:
        s = by[top].stats()["purity_T1"]
        parts.append(
            f"at α = {top:g} the purity after T1 is {s[0]:.3f} ± {s[1]:.3f} "
            f"(P1 {by[top].outcomes['P1']})"
        )
    return "; ".join(parts)


def phase_figure(result: Result) -> tuple[Figure, dict[str, list[Any]]]:
    """Heat maps of the phase diagram (one per claim), cells where the claim holds
    framed in red, undecided cells in dashed orange; and the CSV columns behind them."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    rows = result.rows(result.phase)
    for r in rows:
        for k in CLAIMS + ("all",):
            r[f"{k}_holds"] = r[k] == "holds"
    fig, axes = plt.subplots(2, 2, figsize=(9, 7.0))
    axes = axes.ravel()
    specs = [
        ("purity_T1", "P1", "P1: purity after $T_1$", "viridis", 0.2, 1.0),
        ("ratio_never_gap", "P2", "P2: $G_T$(never) / $G_T$(gap)", "magma", 0.5, 3.0),
        (
            "G_gap_over_single",
            "P3a",
            "P3a: $G_T$(gap) / $G_T$(M=1)",
            "viridis_r",
            0.0,
            1.0,
        ),
        ("uniformity", "P3b", "P3b: within-set uniformity", "viridis", 0.0, 1.0),
    ]
    xs = sorted({r["eta"] for r in rows})
    ys = sorted({r["signal_scale"] for r in rows})
    for ax, (key, claim, title, cmap, lo, hi) in zip(axes, specs):
        im = phase_heatmap(
            ax,
            rows,
            "eta",
            "signal_scale",
            key,
            passed=f"{claim}_holds",
            cmap=cmap,
            title=title,
            vmin=lo,
            vmax=hi,
        )
        for r in rows:
            if r[claim] == "inconclusive":
                ax.add_patch(
                    Rectangle(
                        (xs.index(r["eta"]) - 0.5, ys.index(r["signal_scale"]) - 0.5),
                        1,
                        1,
                        fill=False,
                        ec="orange",
                        lw=2,
                        ls="--",
                    )
                )
        fig.colorbar(im, ax=ax, shrink=0.8)
    p = result.params
    fig.suptitle(
        f"M={p.n_experts}, no-decay aux, alpha={CALIBRATED['alpha']}, "
        f"lambda={CALIBRATED['lam']}, T1=30M, T={p.T}, {p.n_runs} runs per cell\n"
        "red frame = claim holds (2 s.e.), dashed = undecided",
        fontsize=10,
    )
    fig.tight_layout()
    keys = [
        "signal_scale",
        "eta",
        "gain",
        *TABLE_STATS,
        "G_gap_over_single",
        *CLAIMS,
        "all",
    ]
    return fig, {k: [r[k] for r in rows] for k in keys}


def slices_figure(result: Result) -> tuple[Figure, dict[str, list[Any]]]:
    """Purity, uniformity and never/gap ratio along the ``lambda`` and ``alpha`` slices;
    and the CSV columns."""
    import matplotlib.pyplot as plt

    th = result.thresholds
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    for ax, cells, key in [
        (axes[0], result.lam, "lam"),
        (axes[1], result.alpha, "alpha"),
    ]:
        rows = result.rows(cells)
        xv = [r[key] for r in rows]
        ax.plot(
            xv, [r["purity_T1"] for r in rows], "o-", label="purity after $T_1$ (P1)"
        )
        ax.plot(
            xv,
            [r["uniformity"] for r in rows],
            "s-",
            label="within-set uniformity (P3b)",
        )
        ax.plot(
            xv,
            [r["ratio_never_gap"] / 3 for r in rows],
            "^-",
            label="$G_T$(never)/$G_T$(gap) / 3 (P2)",
        )
        ax.axhline(th.purity, color="grey", ls=":", lw=1)
        ax.set_xscale("symlog", linthresh=0.1)
        ax.set_xlabel(key)
        ax.set_ylim(0, 1.05)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle("slices through the calibrated point", fontsize=10)
    lam_rows, alpha_rows = result.rows(result.lam), result.rows(result.alpha)
    cols: dict[str, list[Any]] = {
        "knob": ["lam"] * len(lam_rows) + ["alpha"] * len(alpha_rows),
        "value": [r["lam"] for r in lam_rows] + [r["alpha"] for r in alpha_rows],
    }
    for k in (*TABLE_STATS, *CLAIMS):
        cols[k] = [r[k] for r in lam_rows + alpha_rows]
    return fig, cols
