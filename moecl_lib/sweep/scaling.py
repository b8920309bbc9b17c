"""Worker scaling of :func:`~.execute.run_grid`: one grid run on local clusters of 1, 2, ... workers.

Reported per worker count: wall time of the cells (cluster start-up and a warm-up task on every worker
excluded, reported apart), the sum
of the cells' own compute times, the speed-up over one worker, and the overhead per cell,
``(wall * workers - compute) / cells`` (scheduling, transfer and storage, in seconds of a worker).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from moecl_lib.sweep.execute import local_cluster, run_grid
from moecl_lib.sweep.grid import GridSpec, parse_grid


@dataclass(frozen=True)
class ScalingRow:
    """One worker count."""

    workers: int
    startup_s: float
    wall_s: float
    compute_s: float
    speedup: float
    overhead_per_cell_s: float


def scaling_grid(n_side: int = 10, runs: int = 8, T: int = 300) -> GridSpec:
    """A calibrated-setting grid of ``n_side`` x ``n_side`` cells (signal scale x eta), M = 6."""
    return parse_grid(
        {
            "name": "scaling",
            "base": {"setting": "calibrated", "n_experts": 6, "T": T},
            "axes": {
                "signal_scale": [round(float(x), 3) for x in np.linspace(1, 8, n_side)],
                "eta": [round(float(x), 3) for x in np.geomspace(0.1, 2.0, n_side)],
            },
            "runs": runs,
            "seed": 0,
        },
        "scaling",
    )


def warm_up() -> None:
    """Import the engine and run one tiny simulation (loads numba's cached kernel)."""
    from moecl_lib.linear.engine import simulate
    from moecl_lib.sweep.grid import build_config

    simulate(build_config({"n_tasks": 2, "d": 4, "s": 2, "T": 3, "n_experts": 2}, 1, 0))


def measure_scaling(
    spec: GridSpec | None = None, workers: Sequence[int] = (1, 2)
) -> tuple[list[ScalingRow], bool]:
    """Run ``spec`` (default :func:`scaling_grid`) once per worker count, each from an empty folder.
    Returns the rows and whether every run gave identical results (wall times aside)."""
    from distributed import Client

    spec = spec or scaling_grid()
    rows: list[ScalingRow] = []
    results: list[xr.Dataset] = []
    for w in workers:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            with local_cluster(w) as cluster, Client(cluster) as client:
                client.wait_for_workers(w)
                client.run(
                    warm_up
                )  # imports and compiled kernels loaded on every worker
                startup = time.perf_counter() - t0
                t1 = time.perf_counter()
                ds = run_grid(
                    spec, Path(tmp), scheduler=cluster.scheduler_address, progress=False
                )
                wall = time.perf_counter() - t1
        compute = float(ds["seconds"].sum())
        results.append(ds.drop_vars("seconds"))
        base = rows[0].wall_s if rows else wall
        rows.append(
            ScalingRow(
                workers=w,
                startup_s=startup,
                wall_s=wall,
                compute_s=compute,
                speedup=base / wall,
                overhead_per_cell_s=(wall * w - compute) / spec.n_cells,
            )
        )
    same = all(r.identical(results[0]) for r in results[1:])
    return rows, same


def scaling_table(rows: Sequence[ScalingRow], spec: GridSpec) -> str:
    """Plain-text table of :func:`measure_scaling` rows."""
    head = f"grid {spec.name}: {spec.n_cells} cells x {spec.runs} runs"
    lines = [
        head,
        f"{'workers':>7}  {'start-up s':>10}  {'wall s':>8}  {'compute s':>9}  "
        f"{'speed-up':>8}  {'overhead/cell s':>15}",
    ]
    for r in rows:
        lines.append(
            f"{r.workers:>7}  {r.startup_s:>10.2f}  {r.wall_s:>8.2f}  {r.compute_s:>9.2f}  "
            f"{r.speedup:>8.2f}  {r.overhead_per_cell_s:>15.4f}"
        )
    return "\n".join(lines)
