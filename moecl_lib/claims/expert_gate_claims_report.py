"""What the Expert Gate chapter (:mod:`moecl_lib.claims.expert_gate_claims`) shows of a
result: its tables, two figures (saved with their CSV columns), the generated phrases of
its prose and the configuration printed before it runs.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from moecl_lib import figures as plotting
from moecl_lib.claims.expert_gate_claims_runs import (
    FAMILIES,
    FAMILY_LABEL,
    METHODS,
    Params,
    Result,
)
from moecl_lib.claims.record import reading_outcome_texts
from moecl_lib.claims.rule import Quantity


def accuracy_table(result: Result) -> str:
    """Headline numbers (%) per family: mean ± s.e. over seeds."""
    rows = []
    for k, lab in METHODS.items():
        row: dict[str, object] = {"number (%)": lab}
        for fam in FAMILIES:
            q = result.quantity(f"{fam}_{k}")
            row[FAMILY_LABEL[fam]] = f"{q.value:.1f} ± {q.se:.1f}"
        rows.append(row)
    return plotting.table(rows)


def gate_table(result: Result, fam: str) -> str:
    """Per-task gate accuracy (mean over seeds) of one family."""
    fr = result.families[fam]
    rows = [
        {"task": n, "AE gate %": a, "discriminative gate %": b}
        for n, a, b in zip(
            fr.task_names, fr.per_task("gate_ae"), fr.per_task("gate_disc")
        )
    ]
    return plotting.table(rows, digits=1)


def init_modes(result: Result, fam: str) -> list[str]:
    """How Expert Gate initialised each task's expert at the first seed (scratch
    / finetune / lwf)."""
    return [rep.mode for rep in result.families[fam].classic[0].reports]


def relatedness_table(result: Result) -> str:
    """Relatedness study per family (means over seeds)."""
    rows = []
    for fam in FAMILIES:
        s = result.families[fam].study_per_seed()
        rows.append(
            {
                "family": FAMILY_LABEL[fam],
                "pairs": int(result.families[fam].studies[0].rel.size),
                "rel max": float(np.mean(s["rel_max"])),
                "pairs > threshold": float(np.mean(s["rel_pairs_above"])),
                "rho(rel, FT acc)": float(np.mean(s["rho_rel_ft"])),
                "rho(rel, LwF-FT)": float(np.mean(s["rho_rel_gain"])),
                "most related = best FT source": float(np.mean(s["best_source"])),
                "old head kept LwF / FT": (
                    f"{np.mean(s['retained_lwf']):.1f} / "
                    f"{np.mean(s['retained_ft']):.1f}"
                ),
            }
        )
    return plotting.table(rows, digits=2)


def plot_accuracies(result: Result, out_dir: str) -> Any:
    """Bar chart of the classic protocol's accuracies (saved with its CSV)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    keys = ["expert_gate", "disc_gate", "oracle", "joint", "finetune", "lwf"]
    colors = [
        plotting.ROUTER_COLORS["Expert Gate"],
        "#E69F00",
        plotting.ROUTER_COLORS["oracle router"],
        "#0072B2",
        "#999999",
        "#CC79A7",
    ]
    csv: dict[str, list[Any]] = {"family": [], "method": [], "mean": [], "se": []}
    for ax, fam in zip(axes, ("split", "mixed")):
        qs = [result.quantity(f"{fam}_{k}") for k in keys]
        ax.bar(
            range(len(keys)),
            [q.value for q in qs],
            yerr=[q.se for q in qs],
            color=colors,
            capsize=3,
        )
        ax.set_xticks(
            range(len(keys)),
            [METHODS[k].replace(" (", "\n(") for k in keys],
            rotation=60,
            ha="right",
            fontsize=8,
        )
        ax.set_title(FAMILY_LABEL[fam])
        ax.set_ylim(0, 100)
        for k, q in zip(keys, qs):
            csv["family"].append(FAMILY_LABEL[fam])
            csv["method"].append(k)
            csv["mean"].append(q.value)
            csv["se"].append(q.se)
    axes[0].set_ylabel("average test accuracy (%)")
    plotting.save_figure(fig, out_dir, "classic_accuracies")
    plotting.save_csv(out_dir, "classic_accuracies", csv)
    return fig


def plot_relatedness(result: Result, out_dir: str) -> Any:
    """Relatedness vs fine-tuned target accuracy and vs LwF's gain, all seeds (saved
    with its CSV)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    csv: dict[str, list[Any]] = {
        k: []
        for k in (
            "family",
            "seed",
            "source",
            "target",
            "relatedness",
            "acc_finetune",
            "acc_lwf",
        )
    }
    for fam in ("split", "mixed"):
        fr = result.families[fam]
        mk = "o" if fam == "split" else "s"
        rel = np.concatenate([st.rel for st in fr.studies])
        ft = np.concatenate([st.acc_finetune for st in fr.studies])
        lwf = np.concatenate([st.acc_lwf for st in fr.studies])
        axes[0].scatter(rel, ft, marker=mk, label=FAMILY_LABEL[fam], alpha=0.7)
        axes[1].scatter(rel, lwf - ft, marker=mk, label=FAMILY_LABEL[fam], alpha=0.7)
        for seed, st in zip(result.params.seeds, fr.studies):
            n = st.rel.size
            csv["family"] += [FAMILY_LABEL[fam]] * n
            csv["seed"] += [seed] * n
            csv["source"] += st.source.tolist()
            csv["target"] += st.target.tolist()
            csv["relatedness"] += st.rel.tolist()
            csv["acc_finetune"] += st.acc_finetune.tolist()
            csv["acc_lwf"] += st.acc_lwf.tolist()
    for ax in axes:
        ax.axvline(result.params.rel_threshold, color="k", ls=":", lw=1)
        ax.set_xlabel("relatedness Rel(target, source)")
    axes[0].set_ylabel("target accuracy, fine-tuned from source (%)")
    axes[1].set_ylabel("LwF minus fine-tuning (points)")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[0].legend()
    plotting.save_figure(fig, out_dir, "relatedness")
    plotting.save_csv(out_dir, "relatedness", csv)
    return fig


# ------------------------------------------------------------------------ prose (glued)


def _fmt(q: Quantity, digits: int = 1) -> str:
    return f"{q.value:.{digits}f} ± {q.se:.{digits}f}"


def threshold_sentence(result: Result) -> str:
    """How often relatedness crossed the LwF threshold, in the relatedness study and in
    Expert Gate's runs."""
    thr = result.params.rel_threshold
    above = {fam: result.quantity(f"{fam}_rel_pairs_above").value for fam in FAMILIES}
    top = {fam: result.quantity(f"{fam}_rel_max").value for fam in FAMILIES}
    lwf = {fam: result.quantity(f"{fam}_lwf_inits").value for fam in FAMILIES}
    n_new = {fam: len(result.families[fam].task_names) - 1 for fam in FAMILIES}
    if all(v == 0 for v in above.values()):
        study = (
            f"relatedness never exceeds the {thr:g} threshold in the relatedness "
            f"study (largest value per seed, averaged: {top['split']:.2f} on split "
            f"Fashion-MNIST, {top['mixed']:.2f} on mixed domains)"
        )
    else:
        study = (
            f"relatedness exceeds the {thr:g} threshold for {above['split']:.1f} of "
            f"{n_new['split'] * (n_new['split'] + 1)} task pairs per seed on split "
            f"Fashion-MNIST and {above['mixed']:.1f} of "
            f"{n_new['mixed'] * (n_new['mixed'] + 1)} on mixed domains"
        )
    if all(v == 0 for v in lwf.values()):
        runs = (
            "Expert Gate fine-tunes every new expert, so its LwF branch is never used"
        )
    else:
        runs = (
            f"Expert Gate starts {lwf['split']:.1f} of {n_new['split']} new experts "
            f"per seed with LwF on split Fashion-MNIST and {lwf['mixed']:.1f} of "
            f"{n_new['mixed']} on mixed domains, fine-tuning the others"
        )
    return f"{study}; in the sequential runs {runs}"


def single_models_sentence(result: Result) -> str:
    """Expert Gate against the single task-aware models, per family, with each reading's
    outcome."""
    parts = []
    rd = {r.name: r for c in result.checks for r in c.readings}
    for fam in FAMILIES:
        ft, lwf = rd[f"{fam}_eg_minus_finetune"], rd[f"{fam}_eg_minus_lwf"]
        parts.append(
            f"on {FAMILY_LABEL[fam]} Expert Gate minus the fine-tuned model is "
            f"{ft.estimate:+.1f} ± {ft.se:.1f} points "
            f"({ft.outcome}), minus the LwF model "
            f"{lwf.estimate:+.1f} ± {lwf.se:.1f} ({lwf.outcome})"
        )
    return "; ".join(parts)


def domain_sentence(result: Result) -> str:
    """Relatedness within vs across domains (mixed family)."""
    w, a = result.quantity("mixed_rel_within"), result.quantity("mixed_rel_across")
    r = next(
        r
        for c in result.checks
        for r in c.readings
        if r.name == "mixed_rel_within_minus_across"
    )
    if r.outcome == "holds":
        head = "relatedness is clearly lower across domains than within one"
    elif r.outcome == "fails":
        head = (
            "relatedness is clearly higher across domains than within one, against "
            "the paper's argument"
        )
    else:
        head = "relatedness within and across domains cannot be told apart at this size"
    return f"{head} (mean {w.value:.2f} within, {a.value:.2f} across, mixed domains)"


def glue_texts(result: Result) -> dict[str, str]:
    """Generated phrases for the chapter's prose (glue keys -> text) and every reading's
    outcome (``outcome_<reading name>``)."""
    out = {
        "eg_threshold_sentence": threshold_sentence(result),
        "eg_single_models_sentence": single_models_sentence(result),
        "eg_domain_sentence": domain_sentence(result),
    }
    out.update(reading_outcome_texts(result.checks))
    return out


def configuration(params: Params) -> dict[str, Any]:
    """The configurations ``run`` uses (printed by the chapter before it runs)."""
    return {
        "expert_gate (seed = each of seeds)": asdict(
            params.gate_config(params.seeds[0])
        ),
        "expert": f"mlp_expert(in_dim=784, n_classes=2, hidden={params.hidden})",
        "baselines and discriminative gate": {
            "epochs": params.expert_epochs,
            "lr": params.expert_lr,
            "momentum": params.expert_momentum,
            "batch_size": params.expert_batch,
        },
        "relatedness study": {
            "n_target_train": params.n_target_train,
            "rel_threshold": params.rel_threshold,
        },
        "seeds": list(params.seeds),
    }
