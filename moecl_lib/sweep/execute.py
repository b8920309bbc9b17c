"""Run a grid's cells on ``dask.distributed`` (or inline), storing each cell as it
finishes.

Security: a Dask scheduler runs whatever its clients send it. The local cluster of
:func:`run_grid` binds its scheduler and workers to 127.0.0.1 only. A cluster reachable
over a network must use TLS: pass a ``distributed.security.Security`` with the CA,
certificate and key of the cluster (``moecl sweep --tls-ca-file --tls-cert --tls-key``),
and never expose an unauthenticated scheduler.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from moecl_lib.analysis.routing import specialisation
from moecl_lib.linear.engine import simulate
from moecl_lib.sweep.grid import GridSpec, build_config, cell_key, cell_seed
from moecl_lib.sweep.store import (
    METRICS,
    assemble,
    cell_dataset,
    finished_cells,
    write_cell,
    write_dataset,
)

LOCALHOST = "127.0.0.1"
INLINE = "inline"


class SweepError(RuntimeError):
    """A cell failed; the message names it (finished cells stay on disk)."""


def run_cell(
    params: Mapping[str, Any], runs: int, seed: int, window: int | None
) -> tuple[dict[str, np.ndarray], float]:
    """Simulate one cell and return its per-run metrics (:data:`~.store.METRICS`) and
    wall time (s). Runs on a worker: a plain module-level function of plain data."""
    start = time.perf_counter()
    cfg = build_config(params, runs, seed)
    # one core per worker: no prefetch thread (same numbers)
    sp = specialisation(simulate(cfg, prefetch=False), window=window)
    metrics = {m: np.asarray(getattr(sp, m)) for m in METRICS}
    return metrics, time.perf_counter() - start


def local_cluster(workers: int | None = None) -> Any:
    """A ``LocalCluster`` of ``workers`` single-threaded worker processes (default: one
    per core), scheduler, workers and the HTTP endpoints on 127.0.0.1."""
    import dask
    from distributed import LocalCluster

    n = workers or os.cpu_count() or 1
    # Dask's nanny sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which hands freed
    # memory back to the system at once and turns off glibc's adaptive thresholds: the
    # engine, which allocates per block of rounds, then runs 15-20 % slower (measured
    # with `moecl scaling`). Keep one BLAS thread per worker, drop the trim threshold;
    # and no statistical profiler (it samples every stack every 10 ms under the GIL).
    environ = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1}
    with dask.config.set(
        {
            "distributed.nanny.pre-spawn-environ": environ,
            "distributed.worker.profile.enabled": False,
        }
    ):
        return LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host=LOCALHOST,
            scheduler_port=0,
            dashboard_address=f"{LOCALHOST}:0",  # HTTP endpoints: localhost only
            silence_logs=logging.ERROR,
        )


@contextmanager
def dask_client(
    scheduler: str | None = None, workers: int | None = None, security: Any = None
) -> Iterator[Any]:
    """A ``distributed.Client`` of a local cluster (``None`` or ``"local"``, closed on
    exit) or of a running scheduler (an address, with ``security`` for TLS)."""
    from distributed import Client

    if scheduler == INLINE:
        raise ValueError("no Dask client for scheduler='inline'")
    cluster = local_cluster(workers) if scheduler in (None, "local") else None
    client = Client(cluster if cluster is not None else scheduler, security=security)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def run_grid(
    spec: GridSpec,
    out: str | Path,
    *,
    scheduler: str | None = None,
    workers: int | None = None,
    security: Any = None,
    progress: bool = True,
) -> xr.Dataset:
    """Run every unfinished cell of ``spec`` and return the assembled dataset (also
    ``out/grid.nc``).

    Args:
        spec: validated grid (:func:`~.grid.load_grid`).
        out: output folder; cells already in ``out/cells`` are skipped.
        scheduler: ``None`` for a local cluster, ``"inline"`` to run in this process
            (no Dask), or the address of a running scheduler (``tcp://...`` or
            ``tls://...``).
        workers: processes of the local cluster (default: one per core).
        security: ``distributed.security.Security`` for a remote scheduler (TLS).
        progress: a tqdm bar over cells.
    """
    from tqdm.auto import tqdm

    out = Path(out)
    done = {cell_key(spec, c) for c in finished_cells(out, spec)}
    todo = [c for c in spec.cells() if cell_key(spec, c) not in done]
    bar = tqdm(
        total=spec.n_cells,
        initial=spec.n_cells - len(todo),
        desc=f"grid {spec.name}",
        unit="cell",
        disable=not progress,
    )
    try:
        if todo and scheduler == INLINE:
            for cell in todo:
                _store(out, spec, cell, *_call(spec, cell))
                bar.update()
        elif todo:
            _run_dask(spec, out, todo, scheduler, workers, security, bar)
    finally:
        bar.close()
    ds = assemble(out, spec)
    write_dataset(ds, out / "grid.nc")
    return ds


def _call(
    spec: GridSpec, cell: Mapping[str, Any]
) -> tuple[dict[str, np.ndarray], float]:
    try:
        return run_cell(
            spec.params(cell), spec.runs, cell_seed(spec, cell), spec.window
        )
    except Exception as exc:
        raise SweepError(f"cell {dict(cell)}: {type(exc).__name__}: {exc}") from exc


def _store(
    out: Path,
    spec: GridSpec,
    cell: Mapping[str, Any],
    metrics: Mapping[str, np.ndarray],
    seconds: float,
) -> None:
    write_cell(out, spec, cell, cell_dataset(spec, cell, metrics, seconds))


def _run_dask(
    spec: GridSpec,
    out: Path,
    todo: list[dict[str, Any]],
    scheduler: str | None,
    workers: int | None,
    security: Any,
    bar: Any,
) -> None:
    from distributed import as_completed

    with dask_client(scheduler, workers, security) as client:
        futures = {
            client.submit(
                run_cell,
                spec.params(cell),
                spec.runs,
                cell_seed(spec, cell),
                spec.window,
                key=f"cell-{cell_key(spec, cell)}",
                pure=False,
            ): cell
            for cell in todo
        }
        for fut in as_completed(futures):
            cell = futures[fut]
            try:
                metrics, seconds = fut.result()
            except Exception as exc:
                for other in futures:
                    other.cancel()
                raise SweepError(f"cell {cell}: {type(exc).__name__}: {exc}") from exc
            _store(out, spec, cell, metrics, seconds)
            bar.update()
