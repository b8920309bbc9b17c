"""Figures of the chapter :mod:`moecl_lib.claims.specialisation_boundary`: the purity
map with the predicted boundary, the onset of repeats, the load-balancing-only emulation
and the Gamma scan of the termination rule. Each returns the figure and the columns of
its CSV file."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from moecl_lib.analysis.calibration import setting_config
from moecl_lib.claims.specialisation_boundary import DIFFER, Result
from moecl_lib.theory import specialisation as th

#: Named settings drawn on the map: (signal scale c, eta) of
#: :mod:`moecl_lib.analysis.calibration`.
SETTING_POINTS: dict[str, tuple[float, float]] = {
    "recalled": (1.0, 0.5),
    "calibrated": (5.0, 0.5),
}


def plot_map(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Purity right after T1 on the (c, eta) map (trained and frozen router), predicted
    boundary ``eta = gain_star / c^2``, naive ``lambda`` boundary, both settings; figure
    + CSV (one row per cell)."""
    import matplotlib.pyplot as plt

    mp, p = result.arrays["map"], result.params
    g_star = result.quantity("gain_star").value
    cfg = setting_config("calibrated", p.n_experts)
    naive = th.naive_gain(p.n_experts, cfg.lam, cfg.sigma0, cfg.d, cfg.s, cfg.beta)
    c, eta = mp["c"], mp["eta"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True, layout="constrained")
    cc = np.geomspace(c.min(), c.max(), 100)
    for ax, key, title in zip(
        axes, ("never", "freeze"), ("router trained", "router frozen at T1")
    ):
        im = ax.pcolormesh(
            c,
            eta,
            mp[key].mean(axis=-1).T,
            shading="nearest",
            vmin=0.2,
            vmax=1.0,
            cmap="viridis",
        )
        ax.plot(cc, g_star / cc**2, "w-", lw=2, label=r"predicted $\eta c^2=$ gain$^*$")
        ax.plot(cc, naive / cc**2, "w:", lw=1.5, label=r"naive: one push $=\lambda$")
        for name, (cs, es) in SETTING_POINTS.items():
            ax.plot(cs, es, "o", mfc="none", mec="r", ms=9)
            ax.annotate(
                name, (cs, es), color="r", xytext=(5, 5), textcoords="offset points"
            )
        ax.set(xscale="log", yscale="log", xlabel="signal scale $c$", title=title)
        ax.set_ylim(eta.min() / 1.2, eta.max() * 1.2)
    axes[0].set_ylabel(r"router learning rate $\eta$")
    axes[0].legend(fontsize=8, loc="lower left")
    fig.colorbar(im, ax=axes, label=f"routing purity after $T_1$ = {int(mp['T1'])}")
    C, E = np.meshgrid(c, eta, indexing="ij")
    csv = {"c": C, "eta": E, "gain": E * C**2}
    for key in ("never", "freeze"):
        csv[f"purity_{key}"] = mp[key].mean(axis=-1)
        csv[f"purity_{key}_se"] = mp[key].std(axis=-1, ddof=1) / math.sqrt(
            mp[key].shape[-1]
        )
    csv["predicted_eta"] = g_star / C**2
    return fig, csv


def plot_onset(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Repeat rate per round at ``2 gain_star``: simulation and prediction; figure +
    CSV."""
    import matplotlib.pyplot as plt

    rate, gain = result.arrays["onset_rate"], result.arrays["onset_gain"]
    g_star, M = result.quantity("gain_star").value, result.params.n_experts
    t = np.arange(1, rate.size + 1)
    pred = th.repeat_curve(t, gain, g_star, M, setting_config("calibrated", M).n_tasks)
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    ax.plot(t, rate, label="simulation (mean over runs)")
    ax.plot(t, pred, "k--", label="prediction")
    ax.set(xlabel="round $t$", ylabel="share of repeats", title=f"gain = {gain:.1f}")
    ax.legend(fontsize=8)
    return fig, {"t": t, "repeat_sim": rate, "repeat_pred": pred}


def plot_gamma(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Share of runs in which the gap rule differs from freezing at T1, against Gamma;
    figure + CSV."""
    import matplotlib.pyplot as plt

    gam, share = result.arrays["gamma"], result.arrays["share"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    csv: dict[str, np.ndarray] = {"gamma": gam}
    for i, s in enumerate(result.arrays["settings"]):
        ax.plot(gam, share[i], "o-", label=s)
        csv[f"share_{s}"] = share[i]
    ax.axvline(
        setting_config("calibrated", result.params.n_experts).gamma_value,
        color="grey",
        ls=":",
        label=r"default $\Gamma=\sigma_0^{1.25}$",
    )
    ax.axhline(DIFFER, color="grey", lw=0.8)
    ax.set(
        xscale="log", xlabel=r"$\Gamma$", ylabel="share of runs: gap ≠ freeze at $T_1$"
    )
    ax.legend(fontsize=8)
    return fig, csv


def plot_aux(result: Result) -> tuple[Figure, dict[str, np.ndarray]]:
    """Gate spread over time with both router terms and with load balancing only after
    T1 (emulation)."""
    import matplotlib.pyplot as plt

    from moecl_lib import figures as plotting

    t = result.arrays["aux_rounds"]
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    csv: dict[str, np.ndarray] = {"t": t}
    for key, label in (
        ("spread_both", "locality + load balancing"),
        ("spread_aux", "load balancing only after $T_1$"),
    ):
        x = result.arrays[key]
        se = x.std(axis=0, ddof=1) / math.sqrt(x.shape[0])
        plotting.band(ax, t, x.mean(axis=0), se, label=label, z=2.0)
        csv[f"{key}_mean"], csv[f"{key}_se"] = x.mean(axis=0), se
    ax.axvline(result.params.p2_T1, color="grey", ls=":")
    ax.set(xlabel="round $t$", ylabel="gate spread $\\max_m g - \\min_m g$")
    ax.legend(fontsize=8)
    return fig, csv
