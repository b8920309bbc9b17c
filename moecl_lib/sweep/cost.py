"""What a study grid would cost on many cores: a model on paper, fed with rates measured
on this machine (``moecl scaling --estimate``).

The model (all times in seconds):

* compute: every cell is one task of ``runs x T`` run-rounds at ``cpu_per_run_round``
  seconds of one core, plus ``overhead_per_cell`` (scheduling, transfer, writing its
  file); with ``cores`` single-threaded workers the cells run in
  ``ceil(cells / cores)`` waves, so ``compute = waves x cell_time``;
* scheduler: one central Dask scheduler handles ``scheduler_per_task`` seconds of work
  per task (Dask's documentation gives about 1 ms; we take that), in series:
  ``cells x scheduler_per_task``;
* start-up: every worker imports the library and loads the compiled kernel
  (``startup``, once, in parallel);
* assembly: reading every cell file into one dataset runs in one process,
  ``cells x read_per_cell``.

``wall = startup + max(compute, scheduler) + assembly``; the *bottleneck* is the largest
of the four terms. Core-hours count the compute only.
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from moecl_lib.sweep.grid import GridSpec

SCHEDULER_PER_TASK = 1e-3
"""Seconds of central-scheduler work per task (order of magnitude from Dask's docs)."""


@dataclass(frozen=True)
class Rates:
    """Measured (or assumed) rates of one worker core."""

    cpu_per_run_round: float
    overhead_per_cell: float
    startup: float
    read_per_cell: float
    bytes_per_cell: float
    scheduler_per_task: float = SCHEDULER_PER_TASK


@dataclass(frozen=True)
class Cost:
    """The model's terms for one grid on ``cores`` cores."""

    cells: int
    run_rounds: float
    cores: int
    compute: float
    scheduler: float
    startup: float
    assembly: float
    core_hours: float
    storage_bytes: float

    @property
    def wall(self) -> float:
        return self.startup + max(self.compute, self.scheduler) + self.assembly

    @property
    def bottleneck(self) -> str:
        terms = {
            "compute": self.compute,
            "scheduler": self.scheduler,
            "start-up": self.startup,
            "assembly": self.assembly,
        }
        return max(terms, key=terms.__getitem__)


def grid_cost(cells: int, runs: int, T: int, rates: Rates, cores: int) -> Cost:
    """The model of the module docstring for ``cells`` cells of ``runs`` runs of ``T``
    rounds on ``cores`` cores."""
    if min(cells, runs, T, cores) < 1:
        raise ValueError("cells, runs, T and cores must be >= 1")
    cell_time = runs * T * rates.cpu_per_run_round + rates.overhead_per_cell
    waves = math.ceil(cells / cores)
    return Cost(
        cells=cells,
        run_rounds=float(cells) * runs * T,
        cores=cores,
        compute=waves * cell_time,
        scheduler=cells * rates.scheduler_per_task,
        startup=rates.startup,
        assembly=cells * rates.read_per_cell,
        core_hours=cells * cell_time / 3600.0,
        storage_bytes=cells * rates.bytes_per_cell,
    )


def spec_size(spec: GridSpec) -> tuple[int, int, int]:
    """``(cells, runs, T)`` of a grid (``T`` from its base; the engine default
    otherwise)."""
    from moecl_lib.sweep.grid import build_config

    cell = next(iter(spec.cells()))
    T = build_config(spec.params(cell), 1, 0).T
    return spec.n_cells, spec.runs, T


def measure_rates(spec: GridSpec, overhead_per_cell: float, startup: float) -> Rates:
    """CPU per run-round of one cell of ``spec`` (run here, one core), and the time to
    read back its stored file and the file's size; the per-cell overhead and the
    worker start-up come from :func:`~.scaling.measure_scaling`."""
    from moecl_lib.sweep.execute import run_cell
    from moecl_lib.sweep.grid import cell_seed
    from moecl_lib.sweep.store import cell_dataset, read_cell, write_cell

    cell = next(iter(spec.cells()))
    args = (spec.params(cell), spec.runs, cell_seed(spec, cell), spec.window)
    run_cell(*args)  # warm-up: compiled kernel loaded
    t0 = time.process_time()
    metrics, seconds = run_cell(*args)
    cpu = time.process_time() - t0
    _, _, T = spec_size(spec)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_cell(
            Path(tmp), spec, cell, cell_dataset(spec, cell, metrics, seconds)
        )
        size = path.stat().st_size
        t0 = time.perf_counter()
        read_cell(path)
        read = time.perf_counter() - t0
    return Rates(
        cpu_per_run_round=cpu / (spec.runs * T),
        overhead_per_cell=overhead_per_cell,
        startup=startup,
        read_per_cell=read,
        bytes_per_cell=float(size),
    )


def cost_table(
    spec: GridSpec, rates: Rates, scales: tuple[int, ...], cores: int
) -> str:
    """Text table of the model for ``spec`` refined ``k`` times along every axis (cells
    x ``k^axes``) and ``k`` times more runs, for each ``k`` in ``scales``."""
    cells, runs, T = spec_size(spec)
    n_axes = max(1, len(spec.axes))
    head = (
        f"{'cells':>9} {'runs':>6} {'core-h':>8} {'compute':>9} {'sched.':>8} "
        f"{'start':>6} {'assemble':>9} {'wall':>8} {'storage':>9}  bottleneck"
    )
    lines = [
        f"grid {spec.name}: {cells} cells x {runs} runs x T={T}; {cores} cores; "
        f"{rates.cpu_per_run_round * 1e6:.2f} us CPU per run-round, "
        f"{rates.overhead_per_cell * 1e3:.1f} ms overhead per cell, "
        f"{rates.read_per_cell * 1e3:.1f} ms to read a cell, "
        f"{rates.bytes_per_cell / 1e3:.0f} kB per cell, start-up {rates.startup:.0f} s",
        head,
    ]
    for k in scales:
        c = grid_cost(cells * k**n_axes, runs * k, T, rates, cores)
        lines.append(
            f"{c.cells:>9} {runs * k:>6} {c.core_hours:>8.1f} {c.compute:>8.0f}s "
            f"{c.scheduler:>7.0f}s {c.startup:>5.0f}s {c.assembly:>8.0f}s "
            f"{c.wall:>7.0f}s {c.storage_bytes / 1e9:>8.2f}G  {c.bottleneck}"
        )
    return "\n".join(lines)
