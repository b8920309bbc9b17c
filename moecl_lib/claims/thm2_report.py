"""What the Theorem 2 chapter (:mod:`moecl_lib.claims.thm2_moe_few_experts`) shows of a
result: the sentences of its Reading paragraph that depend on the run, and the figures
of its ideal-MoE and Algorithm-1 sections (each with its CSV columns).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.claims import moe_theorems
from moecl_lib.claims.moe_theorems import agreement_sentence
from moecl_lib.claims.thm2_sections import Result

__all__ = ["plot_alg1", "plot_ideal", "prose"]


# -------------------------------------------------------------------------------- prose


def prose(result: Result) -> dict[str, str]:
    """Sentences of the Reading paragraph whose wording depends on the run, by glue
    key."""
    out: dict[str, str] = {}
    out["thm2_agree_sentence"] = agreement_sentence(result.quantities)
    parts = []
    for M in result.params.experts:
        g = result.quantity(f"G_over_floor_alg1_M{M}")
        c = result.quantity(f"cluster_purity_alg1_M{M}")
        parts.append(
            f"M = {M} ends at {g.value:.2f} ± {g.se:.2f} times the floor "
            f"(cluster purity {c.value:.2f})"
        )
    out["thm2_alg1_sentence"] = "; ".join(parts)
    return out


# ------------------------------------------------------------------------------ figures


def plot_ideal(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 2 figure (simulation bands, exact curves, both floors) and its CSV
    columns."""
    p = result.params
    single, moe = result.floors["single: exact"], result.floors["MoE: exact"]

    def floors(axes: Any) -> None:
        for ax, i in [(axes[1], 0), (axes[0], 1)]:
            ax.axhline(single[i], color="grey", ls=":")
            ax.axhline(moe[i], color="C3", ls=":")
        axes[1].plot([], [], color="grey", ls=":", label="single-expert floor")
        axes[1].plot([], [], color="C3", ls=":", label="within-cluster floor")

    n_tasks = len(result.cluster_of)
    return moe_theorems.plot_ideal(
        result.sim,
        result.exact,
        p.T,
        floors,
        f"Ideal MoE with M < N={n_tasks}, K={p.n_clusters} clusters; dashed: exact "
        "(ours)",
    )


def plot_alg1(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 3 figure (Algorithm 1 per M, exact given the routing, both floors) and
    its CSV columns."""
    return moe_theorems.plot_alg1(
        result.alg,
        result.params.alg1_T,
        [
            (float(result.floor_single_alg1.mean()), "grey", "single-expert floor"),
            (float(result.floor_moe_alg1.mean()), "C3", "within-cluster floor"),
        ],
        "Algorithm 1 on clustered tasks; dashed: exact given the realised routing",
    )
