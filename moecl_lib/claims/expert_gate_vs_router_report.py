"""What the chapter :mod:`moecl_lib.claims.expert_gate_vs_router` shows of a result:
its tables, three figures (saved with their CSV columns), wall times and the generated
phrases of its prose.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from moecl_lib import figures as plotting
from moecl_lib.analysis.metrics import mean_se
from moecl_lib.claims.expert_gate_vs_router_runs import (
    IMAGE_LEARNERS,
    LINEAR_ROUTERS,
    Result,
    n_slots,
    route_acc,
    scale_tag,
)
from moecl_lib.claims.record import reading_outcome_texts
from moecl_lib.expert_gate.linear import (
    merged_task_pairs,
)

COLORS = plotting.ROUTER_COLORS
# routing-accuracy panels: the oracle is a wide pale line underneath, so that routers
# that match it stay visible
ROUTE_MARKERS = {
    "Expert Gate (c=0)": "s",
    "Expert Gate (c=1)": "^",
    "oracle router": "",
}
ROUTE_LINES: dict[str, dict[str, Any]] = {
    "oracle router": {"lw": 4.0, "alpha": 0.45, "zorder": 1},
    "Expert Gate (c=0)": {"ls": "--", "zorder": 3},
    "Expert Gate (c=1)": {"ls": ":", "zorder": 3},
}


def linear_table(result: Result) -> str:
    """Per setting and router: G_T, F_T, routing accuracy, merged pairs, experts used,
    gate scalars."""
    rows = []
    for s, (cfg, runs) in result.linear.items():
        for key, lr in runs.items():
            r = lr.result
            G, F = (
                result.quantity(f"lin_{s}_{key}_G_T"),
                result.quantity(f"lin_{s}_{key}_F_T"),
            )
            ra = (
                result.quantity(f"lin_{s}_{key}_route_acc").value
                if key != "single"
                else float("nan")
            )
            gate = (
                cfg.n_experts * cfg.d
                if key in ("gap", "never")
                else float(np.mean(r.gate_params))
                if key.startswith("eg_")
                else 0
            )
            rows.append(
                {
                    "setting": s,
                    "router": LINEAR_ROUTERS[key],
                    "G_T": f"{G.value:.3f} ± {G.se:.3f}",
                    "F_T": f"{F.value:.3f} ± {F.se:.3f}",
                    "route acc (last window)": ra,
                    "merged task pairs": float(
                        merged_task_pairs(
                            r.experts,
                            r.tasks,
                            n_slots(r),
                            cfg.n_tasks,
                            after=cfg.T // 2,
                        ).mean()
                    ),
                    "experts used": float(
                        np.mean([np.unique(e).size for e in r.experts])
                    ),
                    "gate scalars": float(gate),
                }
            )
    return plotting.table(rows, digits=2)


def sweep_table(result: Result) -> str:
    """G_T and routing accuracy per signal scale."""
    rows = []
    for c, sw in result.sweep.items():
        row: dict[str, object] = {"||v_n||": c}
        for key, G in sw["G_T"].items():
            row[f"G_T {LINEAR_ROUTERS[key]}"] = float(np.mean(G))
        row["route acc paper"] = float(np.mean(sw["route_acc"]["gap"]))
        row["route acc EG"] = float(np.mean(sw["route_acc"]["eg_c0"]))
        rows.append(row)
    return plotting.table(rows, digits=3)


def image_table(result: Result) -> str:
    """Per learner: ACC, forgetting, F_T, G_T, routed accuracy, routing accuracy,
    experts, parameters."""
    rows = []
    for key, items in result.image.items():
        outs = [o for _, o in items]

        def ms(m: str, key: str = key) -> str:
            q = result.quantity(f"img_{key}_{m}")
            return f"{q.value:.1f} ± {q.se:.1f}"

        rows.append(
            {
                "learner": IMAGE_LEARNERS[key],
                "ACC": ms("ACC"),
                "forgetting": ms("forgetting"),
                "F_T": ms("F_T"),
                "G_T": ms("G_T"),
                "routed acc": ms("final_routed_acc"),
                "route acc (last window)": float(
                    np.mean([o["routing_acc"][-1] for o in outs])
                ),
                "experts used": float(np.mean([o["experts_used"] for o in outs])),
                "gate params (seed 0)": int(outs[0]["gate"]),
                "expert params (seed 0)": int(outs[0]["experts"]),
            }
        )
    return plotting.table(rows, digits=2)


def wall_times(result: Result) -> str:
    """Machine-dependent wall times (print outside checked cells)."""
    lines = [
        f"{IMAGE_LEARNERS[k]:22s} run_stream wall time (training + evaluation) "
        f"{np.mean([o['wall_time'] for _, o in items]):6.1f} s"
        for k, items in result.image.items()
    ]
    for s, (_, runs) in result.linear.items():
        lines.append(
            f"{s} "
            + str({LINEAR_ROUTERS[k]: round(lr.seconds, 2) for k, lr in runs.items()})
        )
    return "\n".join(lines)


def plot_linear(result: Result, out_dir: str) -> Any:
    """G_t and windowed routing accuracy of every router, per setting (saved with its
    CSV)."""
    import matplotlib.pyplot as plt

    lin = result.linear
    w = result.params.window_linear
    fig, axes = plt.subplots(len(lin), 2, figsize=(11, 3.8 * len(lin)), squeeze=False)
    csv: dict[str, Any] = {}
    for row, (s, (cfg, runs)) in enumerate(lin.items()):
        t = np.arange(1, cfg.T + 1)
        for key, lr in runs.items():
            r, name = lr.result, LINEAR_ROUTERS[key]
            m, se = mean_se(r.G)
            plotting.band(axes[row, 0], t, m, se, label=name, z=2.0, color=COLORS[name])
            csv[f"{s}|{name}|G_mean"] = m
            if key != "single":
                ra = route_acc(r, cfg, w)
                rm, rse = mean_se(ra)
                ends = np.minimum(np.arange(1, ra.shape[1] + 1) * w, cfg.T)
                plotting.band(
                    axes[row, 1],
                    ends,
                    rm,
                    rse,
                    label=name,
                    z=2.0,
                    marker=ROUTE_MARKERS.get(name, "o"),
                    ms=4,
                    color=COLORS[name],
                    **ROUTE_LINES.get(name, {}),
                )
        axes[row, 0].set_yscale("symlog", linthresh=1e-2)
        axes[row, 0].set_ylim(bottom=0)
        axes[row, 0].set_title(f"{s}: generalisation error $G_t$")
        axes[row, 1].set_title(f"{s}: routing accuracy per {w} rounds")
        axes[row, 1].set_ylim(0, 1.05)
        axes[row, 0].axvline(cfg.T1_value, color="k", ls=":", lw=0.8)
        for ax in axes[row]:
            ax.set_xlabel("round $t$")
    handles, labs = axes[0, 0].get_legend_handles_labels()
    fig.tight_layout()
    fig.legend(
        handles, labs, loc="upper center", ncol=3, fontsize=9, bbox_to_anchor=(0.5, 0.0)
    )
    plotting.save_figure(fig, out_dir, "linear_head_to_head")
    rounds = np.arange(1, result.params.T_linear + 1)
    plotting.save_csv(out_dir, "linear_head_to_head", dict(round=rounds, **csv))
    return fig


def plot_sweep(result: Result, out_dir: str) -> Any:
    """Final G_T against the signal norm (saved with its CSV)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    scales = list(result.sweep)
    keys = list(next(iter(result.sweep.values()))["G_T"])
    csv: dict[str, Any] = {"signal_scale": scales}
    for key in keys:
        qs = [result.quantity(f"sweep_{scale_tag(c)}_{key}_G_T") for c in scales]
        name = LINEAR_ROUTERS[key]
        ax.errorbar(
            scales,
            [q.value for q in qs],
            yerr=[2 * q.se for q in qs],
            marker="o",
            capsize=3,
            label=name,
            color=COLORS[name],
        )
        csv[f"G_T {name}"] = [q.value for q in qs]
        if key != "single":
            csv[f"route_acc {name}"] = [
                float(np.mean(result.sweep[c]["route_acc"][key])) for c in scales
            ]
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1e-2)
    ax.set_xlabel(r"signal norm $\|v_n\|$")
    ax.set_ylabel("final $G_T$")
    ax.legend(fontsize=8)
    plotting.save_figure(fig, out_dir, "linear_signal_sweep")
    plotting.save_csv(out_dir, "linear_signal_sweep", csv)
    return fig


def plot_images(result: Result, out_dir: str) -> Any:
    """Learner-view G_t and windowed routing accuracy on the image stream (saved with
    its CSV)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    csv: dict[str, Any] = {}
    T, w = result.params.T_image, result.params.window_image
    for key, items in result.image.items():
        name = IMAGE_LEARNERS[key]
        G = np.array([res.curves("learner")[1] for res, _ in items])
        m, se = mean_se(G)
        plotting.band(
            axes[0],
            np.arange(1, G.shape[1] + 1),
            m,
            se,
            label=name,
            z=2.0,
            color=COLORS[name],
        )
        csv[f"{name}|G_mean"] = m
        if key != "single":
            ra = np.array([o["routing_acc"] for _, o in items])
            ends = np.minimum(np.arange(1, ra.shape[1] + 1) * w, T)
            axes[1].plot(ends, ra.mean(0), marker="o", label=name, color=COLORS[name])
    axes[0].set_title("generalisation error $G_t$ (test error %, learner view)")
    axes[1].set_title(f"routing accuracy per {w} rounds")
    axes[1].set_ylim(0, 1.05)
    for ax in axes:
        ax.set_xlabel("round $t$")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    plotting.save_figure(fig, out_dir, "image_head_to_head")
    plotting.save_csv(
        out_dir, "image_head_to_head", dict(round=np.arange(1, T + 1), **csv)
    )
    return fig


# ------------------------------------------------------------------------ prose (glued)


def image_sentence(result: Result) -> str:
    """The paper's router (gap) against Expert Gate on the image stream (paired per
    seed)."""
    q = result.quantity("img_gap_minus_eg_ACC")
    used = result.quantity("img_eg_experts_used").value
    d = f"{q.value:+.1f} ± {q.se:.1f} points of ACC"
    if q.value - 2 * q.se > 0:
        head = (
            f"the paper's router with termination finishes ahead of Expert Gate ({d})"
        )
    elif q.value + 2 * q.se < 0:
        head = (
            f"Expert Gate finishes ahead of the paper's router with termination ({d})"
        )
    else:
        head = (
            f"neither input-based router is clearly ahead of the other ({d}, paper's "
            "router minus Expert Gate)"
        )
    n = len(result.task_names)
    merge = " (its autoencoders merge tasks whose batches share half of their images)"
    tail = merge if used < n - 0.05 else ""
    return (
        f"{head}; Expert Gate ends with {used:.1f} experts on average for {n} "
        f"tasks{tail}"
    )


def glue_texts(result: Result) -> dict[str, str]:
    """Generated phrases for the chapter's prose and every reading's outcome
    (``outcome_<reading name>``)."""
    out = {"h2h_image_sentence": image_sentence(result)}
    out.update(reading_outcome_texts(result.checks))
    return out
