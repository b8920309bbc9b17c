"""What the Theorem 1 chapter (:mod:`moecl_lib.claims.thm1_moe_many_experts`) shows of a
result: the sentences of its Reading paragraph that depend on the run, and the figures
of its three sections (each with its CSV columns).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.metrics import mean_se
from moecl_lib.claims import moe_theorems
from moecl_lib.claims.estimators import nanmean0
from moecl_lib.claims.moe_theorems import agreement_sentence
from moecl_lib.claims.thm1_sections import Result

__all__ = ["plot_alg1", "plot_ideal", "plot_post", "prose"]


# -------------------------------------------------------------------------------- prose


def _listing(result: Result, fmt: str, Ms: list[int]) -> str:
    """``"v (M = 6), v (M = 12)"`` for the quantities named ``fmt.format(M=M)``."""
    from moecl_lib.claims.rule import fmt_number

    parts = []
    for M in Ms:
        qq = result.quantity(fmt.format(M=M))
        parts.append(f"{fmt_number(qq.value, qq.se)} (M = {M})")
    return ", ".join(parts)


def prose(result: Result) -> dict[str, str]:
    """Sentences of the Reading paragraph whose wording depends on the run, by glue
    key."""
    p = result.params
    Ms = list(p.experts)
    out: dict[str, str] = {}
    out["thm1_agree_sentence"] = agreement_sentence(result.quantities)
    out["thm1_rates"] = _listing(result, "rate_M{M}", Ms)
    out["thm1_alg1_G_ratios"] = _listing(result, "G_ratio_alg1_M{M}", Ms)
    big_n = [
        M
        for M in Ms
        if any(q.name == f"Gpool_over_floor_alg1_M{M}" for q in result.quantities)
    ]
    out["thm1_alg1_pool"] = (
        _listing(result, "Gpool_over_floor_alg1_M{M}", big_n)
        if big_n
        else "(no M >= N ln N in this run)"
    )
    out["thm1_alg1_purity"] = _listing(result, "purity_alg1_M{M}", Ms)
    n_tasks = int(result.configs["alg1|M=1"]["n_tasks"])
    rate_Ms = [
        M
        for M in Ms
        if M >= n_tasks * math.log(n_tasks)
        and any(q.name == f"tF_ratio_alg1_M{M}" for q in result.quantities)
    ]
    reading = next(
        (r for r in result.checks[0].readings if r.name == "alg1_F_to_zero"), None
    )
    if reading is None:
        out["thm1_rate_sentence"] = (
            "no M >= N ln N froze early enough in this run to read the decay of F_t"
        )
    else:
        verb = {
            "fails": "grows between T1 and T for at least one M >= N ln N",
            "holds": "does not grow between T1 and T for any M >= N ln N",
            "inconclusive": (
                "may or may not grow between T1 and T (the data cannot tell)"
            ),
        }
        ratios = _listing(result, "tF_ratio_alg1_M{M}", rate_Ms)
        out["thm1_rate_sentence"] = (
            f"(t-1) F_t {verb[reading.outcome]}: (T-1) F_T / ((T1-1) F_T1) = {ratios}"
        )
    G = {M: result.quantity(f"G_T_alg1_M{M}") for M in Ms}
    best = min(Ms, key=lambda m: G[m].value)
    big = max(Ms)
    if big == best:
        out["thm1_alg1_sentence"] = (
            f"the largest M = {big} also ends with the lowest G_T ({G[big].value:.3f})"
        )
    else:
        out["thm1_alg1_sentence"] = (
            f"the largest M = {big} ends with a larger G_T ({G[big].value:.3f} ± "
            f"{G[big].se:.3f}) than M = {best} ({G[best].value:.3f} ± "
            f"{G[best].se:.3f})"
        )
    return out


# ------------------------------------------------------------------------------ figures


def plot_ideal(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 1 figure (simulation bands, exact curves, single-expert floor) and its
    CSV columns."""
    p, ideal = result.params, result.ideal

    def floors(axes: Any) -> None:
        axes[1].axhline(
            ideal.G_floor, color="grey", ls=":", label="single-expert floor"
        )
        axes[0].axhline(ideal.F_floor, color="grey", ls=":")

    return moe_theorems.plot_ideal(
        ideal.sim,
        ideal.exact,
        p.T,
        floors,
        f"Ideal MoE (specialised routing, {p.ideal_signal} signals), simulation "
        "$\\pm$ 2 s.e.; dashed: exact expectation (ours)",
    )


def plot_post(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 2 figure (simulation, conditional formula, c/t tail) and its CSV
    columns."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    p, post = result.params, result.post
    t = np.arange(1, p.T + 1)
    tt = t[p.t0 :]
    form = {k: nanmean0(v) for k, v in post.formula.items()}
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    csv: dict[str, np.ndarray] = {"t": t}
    for ax, key in [(axes[0], "F"), (axes[1], "G")]:
        m, se = mean_se(getattr(post.sim, key))
        plotting.band(ax, t, m, se, label="simulation ($\\pm$ 2 s.e.)", z=2.0)
        ax.plot(tt, form[key][p.t0 :], "k--", lw=1, label="conditional formula (ours)")
        ax.axvline(p.t0, color="grey", lw=0.8)
        ax.set_xlabel("round $t$")
        csv[f"{key}_mean"], csv[f"{key}_se"], csv[f"{key}_formula"] = m, se, form[key]
    axes[1].plot(tt, post.c.mean() / tt, ":", color="C3", label="tail $c/t$")
    axes[1].set_yscale("log")
    axes[0].set_title("forgetting $F_t$")
    axes[1].set_title("generalisation error $G_t$ (log scale)")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9)
    fig.suptitle(
        f"M={p.M_post}, random routing until $t_0$={p.t0}, specialised afterwards",
        fontsize=10,
    )
    csv["c_over_t"] = post.c.mean() / t
    return fig, csv


def plot_alg1(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Section 3 figure (Algorithm 1 per M, exact given the routing, single floor) and
    its CSV columns."""
    return moe_theorems.plot_alg1(
        result.alg,
        result.params.alg1_T,
        [(float(result.floor_alg1.mean()), "grey", "single-expert floor")],
        "Algorithm 1 (learned router, termination); dashed: exact given the realised "
        "routing",
    )
