"""Output of ``moecl bench``: CSV files, the text tables, the scaling figure and the
printed report (overview in :mod:`moecl_lib.tools.bench`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from moecl_lib.figures.tables import text_table
from moecl_lib.tools.bench_timing import _log


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------
def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Write dict rows (union of keys, in first-seen order) as CSV; floats with 6
    significant digits."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as fh:
        wr = csv.writer(fh)
        wr.writerow(keys)
        for r in rows:
            wr.writerow([_fmt(r.get(k, "")) for k in keys])
    return path


def _fmt(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return f"{float(v):.6g}"
    return v


def _si(x: float) -> str:
    return f"{x:.3g}" if x < 1e3 else f"{x:.3e}".replace("e+0", "e").replace("e+", "e")


def throughput_table(rows: Sequence[dict[str, Any]]) -> str:
    """Printable table: batched and reference throughput (run-rounds/s, CPU and wall)
    and the ratios."""
    head = [
        "case", "backend", "R", "T", "batched rr/s", "(wall)", "reference rr/s",
        "(wall)", "ratio cpu", "ratio wall", "draws share", "ceiling",
    ]  # fmt: skip
    cells = []
    for r in rows:
        ref = "ref_rr_per_s_cpu" in r
        cells.append(
            [
                str(r["case"]),
                str(r.get("backend", "-")),
                str(r["R"]),
                str(r["T"]),
                _si(r["batched_rr_per_s_cpu"]),
                _si(r["batched_rr_per_s_wall"]),
                _si(r["ref_rr_per_s_cpu"]) if ref else "-",
                _si(r["ref_rr_per_s_wall"]) if ref else "-",
                f"{r['speedup_cpu']:.1f}" if ref else "-",
                f"{r['speedup_wall']:.1f}" if ref else "-",
                f"{r['draws_share_of_batched_cpu']:.0%}",
                f"{r['ratio_ceiling_cpu']:.0f}" if ref else "-",
            ]
        )
    return text_table(head, cells, align="<<", rule=True)


def plot_scaling(rows: Sequence[dict[str, Any]], out_dir: Path) -> list[Path]:
    """One figure, four panels: CPU microseconds per run-round versus T, R, M and d,
    batched vs reference.

    Per run-round cost is total CPU time / (runs x rounds): flat in T means time linear
    in T; the reference's cost per round grows with T because it re-scans the history
    (time quadratic in T).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    from moecl_lib.figures.io import save_figure
    from moecl_lib.figures.style import apply_style

    apply_style()
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.4))
    labels = {
        "T": "rounds T",
        "R": "runs R (batched)",
        "M": "experts M",
        "d": "dimension d",
    }
    for ax, sweep in zip(axes, ("T", "R", "M", "d")):
        for impl, style in (("batched", "o-"), ("reference", "s--")):
            pts = sorted(
                (r["value"], r["cpu_s"] / r["run_rounds"] * 1e6, r["R"])
                for r in rows
                if r["sweep"] == sweep and r["implementation"] == impl
            )
            if not pts:
                continue
            x = np.array([p[0] for p in pts], dtype=float)
            y = np.array([p[1] for p in pts])
            lab = impl if sweep == "R" else f"{impl} (R={pts[0][2]})"
            ax.plot(x, y, style, label=lab, ms=4)
            if sweep == "T" and impl == "reference":
                ax.plot(
                    x,
                    y[-1] * x / x[-1],
                    color="0.6",
                    lw=0.8,
                    label="slope 1 (time ~ T^2)",
                )
        values = sorted({r["value"] for r in rows if r["sweep"] == sweep})
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(values)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.set_xlabel(labels[sweep])
        ax.legend(fontsize=7)
    axes[0].set_ylabel("CPU us per run-round")
    fig.suptitle(
        "Cost per run-round: batched engine vs naive per-run reference (best of "
        "repeats)",
        fontsize=10,
    )
    fig.tight_layout()
    paths = save_figure(fig, out_dir, "scaling")
    plt.close(fig)
    return paths


def _print_report(summary: dict[str, Any], out_dir: Path) -> None:
    _log("")
    _log(
        "Throughput in run-rounds per second (best of repeats; reference timed on "
        f"{summary['throughput'][0].get('ref_runs_timed', '-')} run(s) at full T, "
        "extrapolated linearly to R):"
    )
    _log(throughput_table(summary["throughput"]))
    _log(
        "ratio = reference time / batched time for the same R and T (cpu: process CPU "
        "time of all threads; wall: elapsed; the numba backend draws the next block's "
        "random numbers in a second thread, so its wall time can be below its CPU "
        "time). draws share = CPU time spent drawing the random numbers / batched CPU "
        "time; ceiling = the CPU ratio of an engine that only drew them."
    )
    g = summary.get("growth_exponent_T", {})
    q = summary.get("reference_quadratic_fit", {})
    if summary.get("plan") == "quick":
        _log(
            "(--quick: tiny sizes for a smoke test; these numbers are not measurements)"
        )
    _log(
        "\nTime vs T, local log-log slope at the largest T: batched "
        f"{g.get('batched', float('nan')):.2f}, reference "
        f"{g.get('reference', float('nan')):.2f}"
        + (
            " (fit a T + b T^2: quadratic share of the per-round cost at "
            f"T={q['T_max']:.0f}: {q['quadratic_share_at_T_max']:.0%})"
            if q and 0 <= q["quadratic_share_at_T_max"] <= 1
            else ""
        )
    )
    for m in summary["memory"]:
        _log(
            f"Peak traced memory, {m['implementation']} (R={m['R']}, T={m['T']}, "
            f"M={m['M']}): {m['peak_traced_MiB']:.1f} MiB (result arrays "
            f"{m['result_arrays_MiB']:.1f} MiB)"
        )
    _log(f"Max RSS of the benchmark process: {summary['max_rss_MiB']:.0f} MiB")
    if "notebooks" in summary:
        _log("\nNotebook wall times [s]:")
        stems = sorted({r["notebook"] for r in summary["notebooks"]})
        for s in stems:
            cells = {
                r["profile"]: r for r in summary["notebooks"] if r["notebook"] == s
            }
            _log(
                f"  {s:<32} "
                + "  ".join(
                    f"{p}: {c['wall_s']:7.1f}{'' if c['ok'] else ' FAILED'}"
                    for p, c in cells.items()
                )
            )
    if "book" in summary:
        _log("Book build (paper profile):")
        for r in summary["book"]:
            _log(
                f"  {r['step']:<28} {r['wall_s']:8.1f} s "
                f"{'ok' if r['ok'] else 'FAILED'}"
            )
    _log(
        f"\nLoad average at start/end: {summary['load_average_start']} / "
        f"{summary['load_average_end']} (2 shared cores: timings are noisy)"
    )
    _log(
        f"Benchmark wall time {summary['benchmark_wall_s']:.0f} s; results in "
        f"{out_dir}/"
    )
