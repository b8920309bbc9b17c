"""The figure of the Figure 2 chapter (:mod:`moecl_lib.claims.fig2_dynamics`), one per
setting (saved with its CSV columns), and the verdict lines shown to the reader.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from moecl_lib import figures as plotting
from moecl_lib.claims.fig2_settings import Result
from moecl_lib.claims.rule import ClaimCheck

__all__ = ["COLORS", "plot", "summary_lines"]

COLORS = plotting.M_COLORS


def plot(result: Result, setting: str, out_dir: str) -> Any:
    """F_t and G_t of one setting (mean +- 1 s.e.), the exact and isotropic M=1 lines,
    T1 of each M."""
    import matplotlib.pyplot as plt

    sr, T = result.settings[setting], result.params.T
    th = sr.theory
    t = np.arange(1, T + 1)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    csv: dict[str, Any] = {"t": t}
    panels = [
        (axes[0], "F", "forgetting $F_t$"),
        (axes[1], "G", "overall generalisation error $G_t$"),
    ]
    for ax, key, title in panels:
        for (M, term), fr in sr.members.items():
            m, se = getattr(fr, f"{key}_mean"), getattr(fr, f"{key}_se")
            label = (
                "M=1 (single expert)"
                if M == 1
                else f"M={M}, " + ("with" if term == "gap" else "w/o") + " termination"
            )
            plotting.band(
                ax,
                t,
                m,
                se,
                z=1.0,
                label=label,
                color=COLORS.get(M),
                ls="-" if term == "gap" or M == 1 else "--",
                lw=1.2,
            )
            csv[f"M{M}_{term}_{key}_mean"], csv[f"M{M}_{term}_{key}_se"] = m, se
        ax.plot(
            t,
            th[f"{key}_exact"],
            color="0.45",
            lw=1.5,
            ls="-.",
            label=f"M=1 exact expectation ({th['exact_pools']} pools)",
        )
        ax.plot(
            t,
            th[f"{key}_iso"],
            color="0.6",
            lw=1,
            ls=":",
            label="M=1 isotropic closed form",
        )
        csv[f"theory_exact_{key}"], csv[f"theory_isotropic_{key}"] = (
            th[f"{key}_exact"],
            th[f"{key}_iso"],
        )
        for (M, term), fr in sr.members.items():
            if M > 1 and term == "gap":
                ax.axvline(
                    fr.config.T1_value, color=COLORS.get(M), ls=":", lw=0.8, alpha=0.7
                )
        ax.set_xlabel("round $t$")
        ax.set_ylabel(f"${key}_t$")
        ax.set_title(title, fontsize=10)
        ax.set_ylim(bottom=0)
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=3,
        fontsize=9,
        bbox_to_anchor=(0.5, 0.0),
    )
    fig.suptitle(
        f"{setting} setting: N={sr.N}, mean $\\pm$ 1 s.e. over {sr.runs} runs "
        "(dotted verticals: $T_1$ of each M)",
        fontsize=10,
    )
    plotting.save_figure(fig, out_dir, f"fig2_{setting}")
    plotting.save_csv(out_dir, f"fig2_{setting}", csv)
    return fig


def summary_lines(checks: Sequence[ClaimCheck]) -> list[str]:
    """One line per claim and setting with its verdict, then its readings (for the
    reader)."""
    from moecl_lib.claims.rule import reading_line

    out = []
    for c in checks:
        out.append(f"{c.claim} [{c.setting}]: {c.verdict}")
        out += [f"    {reading_line(r)}" for r in c.readings]
    return out
