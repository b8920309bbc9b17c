"""Pieces the Theorem 1 and Theorem 2 chapters share: per-``M`` quantities of the ideal
MoE and of Algorithm 1, table rows, the agreement sentence and the two figures.

Both chapters compare an *ideal MoE* (forced routing, one shared pool) with its exact
expectation and *Algorithm 1* (the learned router) with the exact expectation given its
realised routing. Conventions as in :mod:`moecl_lib.claims.thm1_moe_many_experts`:
round ``t`` has index ``t - 1``; an ``agree_*`` quantity is a largest
``|mean(sim - exact)| / (z s.e. + slack)`` over the checked rounds (below 1 =
agreement), recorded with s.e. ``1 / z``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.metrics import mean_se
from moecl_lib.claims.estimators import agreement, agreement_quantity, nanmean0
from moecl_lib.claims.rule import Quantity, estimate

__all__ = [
    "agreement_sentence",
    "alg1_member_quantities",
    "check_same_pools",
    "clean_row",
    "ideal_member_quantities",
    "ideal_rows",
    "plot_alg1",
    "plot_ideal",
]


def clean_row(row: dict[str, Any]) -> dict[str, Any]:
    """Rows for printing: exact zeros that come out as -1e-17 are shown as 0."""
    return {
        k: (0.0 if isinstance(v, float) and abs(v) < 1e-12 else v)
        for k, v in row.items()
    }


def ideal_rows(
    sim: Mapping[int, Any],
    exact: Mapping[int, Any],
    check_rounds: Sequence[int],
    T: int,
) -> list[dict[str, Any]]:
    """Ideal MoE table: simulated (mean, s.e.) and exact ``G_t``, ``F_t`` per ``M`` at
    the checked rounds up to ``T``."""
    rows = []
    for M, s in sim.items():
        (G, Gse), (F, _) = mean_se(s.G), mean_se(s.F)
        ex = exact[M]
        for t in (t for t in check_rounds if t <= T):
            rows.append(
                clean_row(
                    {
                        "M": M,
                        "t": t,
                        "G_sim": G[t - 1],
                        "G_se": Gse[t - 1],
                        "G_exact": ex.G[t - 1],
                        "F_sim": F[t - 1],
                        "F_exact": ex.F[t - 1],
                    }
                )
            )
    return rows


def ideal_member_quantities(
    M: int,
    sim: Any,
    ex: Any,
    rounds: Sequence[int],
    z: float,
    slack: float,
    floor: float = 0.0,
) -> list[Quantity]:
    """Ideal MoE with ``M`` experts: simulated ``G_T`` and ``F_T`` (tolerance floor
    ``floor``), their exact expectations and the agreement of ``G``, ``F`` and
    ``G_pool`` with the exact curves."""
    return [
        estimate(
            f"G_T_ideal_M{M}",
            sim.G[:, -1],
            floor=floor,
            label=f"G_T, ideal MoE M={M} (simulation)",
        ),
        estimate(
            f"F_T_ideal_M{M}",
            sim.F[:, -1],
            floor=floor,
            label=f"F_T, ideal MoE M={M} (simulation)",
        ),
        Quantity(
            f"G_T_ideal_exact_M{M}",
            float(ex.G[-1]),
            kind="exact",
            label=f"exact E[G_T], M={M}",
        ),
        Quantity(
            f"F_T_ideal_exact_M{M}",
            float(ex.F[-1]),
            kind="exact",
            label=f"exact E[F_T], M={M}",
        ),
        agreement_quantity(
            f"agree_ideal_M{M}",
            max(
                agreement(getattr(sim, k), getattr(ex, k), rounds, z, slack)
                for k in ("G", "F", "G_pool")
            ),
            z,
            sim.G.shape[0],
            f"ideal MoE M={M}: max |sim - exact| / tolerance",
        ),
    ]


def alg1_member_quantities(
    M: int, r: Any, cond: Any, rounds: Sequence[int], z: float, slack: float
) -> list[Quantity]:
    """Algorithm 1 with ``M`` experts: ``G_T``, ``F_T``, ``G^pool_T`` and the agreement
    of ``G``, ``F`` with the exact curves given the realised routing."""
    return [
        estimate(f"G_T_alg1_M{M}", r.G[:, -1], label=f"G_T, Algorithm 1, M={M}"),
        estimate(f"F_T_alg1_M{M}", r.F[:, -1], label=f"F_T, Algorithm 1, M={M}"),
        estimate(
            f"Gpool_T_alg1_M{M}",
            r.G_pool[:, -1],
            label=f"G^pool_T, Algorithm 1, M={M}",
        ),
        agreement_quantity(
            f"agree_alg1_M{M}",
            max(
                agreement(getattr(r, k), getattr(cond, k), rounds, z, slack)
                for k in ("G", "F")
            ),
            z,
            r.G.shape[0],
            f"Algorithm 1 M={M}: max |sim - exact given the routing| / tolerance",
        ),
    ]


def check_same_pools(alg: Mapping[int, Any]) -> None:
    """Raise unless every Algorithm-1 ``M`` ran on the task pools of ``M = 1`` (the
    ratios between ``M`` are paired over pools)."""
    pools = alg[1].res.pool.W
    for a in alg.values():
        if not np.allclose(a.res.pool.W, pools):
            raise AssertionError("every Algorithm-1 M must use the same pools")


def agreement_sentence(quantities: Sequence[Quantity]) -> str:
    """The sentence on the largest ``agree_*`` statistic of a chapter."""
    agree = [q for q in quantities if q.name.startswith("agree_")]
    worst = max(agree, key=lambda x: x.value)
    return (
        f"the largest agreement statistic of the chapter is {worst.value:.2f} "
        f"({worst.label}); "
        + (
            "below 1: every checked round agrees within the tolerance"
            if worst.value < 1
            else (
                "above 1: at least one checked round departs from the exact expectation"
            )
        )
    )


# ------------------------------------------------------------------------------ figures


def _finish(fig: Figure, axes: Any, title: str) -> None:
    """Panel titles, x labels, the legend right of the G panel and the figure title."""
    axes[0].set_title("forgetting $F_t$")
    axes[1].set_title("generalisation error $G_t$")
    for ax in axes:
        ax.set_xlabel("round $t$")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    fig.suptitle(title, fontsize=10)


def plot_ideal(
    sim: Mapping[int, Any],
    exact: Mapping[int, Any],
    T: int,
    floors: Callable[[Any], None],
    title: str,
) -> tuple[Figure, dict[str, np.ndarray]]:
    """Ideal MoE figure: F_t and G_t per ``M`` (simulation +- 2 s.e., exact curve
    dashed); ``floors(axes)`` draws the chapter's floor lines. Figure + CSV columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    t = np.arange(1, T + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    csv: dict[str, np.ndarray] = {"t": t}
    for M, sm in sim.items():
        lab = "single expert" if M == 1 else f"MoE M={M}"
        for ax, key in [(axes[0], "F"), (axes[1], "G")]:
            m, se = mean_se(getattr(sm, key))
            plotting.band(ax, t, m, se, label=lab, z=2.0, color=plotting.m_color(M))
            ax.plot(t, getattr(exact[M], key), "k--", lw=0.8)
            csv[f"{key}_mean_M{M}"], csv[f"{key}_se_M{M}"] = m, se
            csv[f"{key}_exact_M{M}"] = getattr(exact[M], key)
    floors(axes)
    _finish(fig, axes, title)
    return fig, csv


def plot_alg1(
    alg: Mapping[int, Any],
    T: int,
    floors: Sequence[tuple[float, str, str]],
    title: str,
) -> tuple[Figure, dict[str, np.ndarray]]:
    """Algorithm 1 figure: F_t and G_t per ``M`` (simulation +- 2 s.e., exact given the
    routing dashed) and the G floor lines ``(value, colour, label)``. Figure + CSV
    columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    ta = np.arange(1, T + 1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    csv: dict[str, np.ndarray] = {"t": ta}
    for M, a in alg.items():
        lab = "single expert" if M == 1 else f"MoE M={M}"
        for ax, key in [(axes[0], "F"), (axes[1], "G")]:
            m, se = mean_se(getattr(a.res, key))
            cm = nanmean0(getattr(a.cond, key))
            plotting.band(ax, ta, m, se, label=lab, z=2.0)
            ax.plot(ta, cm, "k--", lw=0.7)
            csv[f"{key}_mean_M{M}"], csv[f"{key}_se_M{M}"] = m, se
            csv[f"{key}_cond_M{M}"] = cm
    for value, color, label in floors:
        axes[1].axhline(value, color=color, ls=":", label=label)
    _finish(fig, axes, title)
    return fig, csv
