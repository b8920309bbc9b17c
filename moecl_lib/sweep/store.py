"""Results of a grid on disk: one netCDF file per finished cell, assembled into one
labelled dataset.

Layout of an output folder ``OUT``::

    OUT/cells/<key>-<code>.nc
                          one finished cell: per-run metrics (dimension ``run``), its
                          parameters, seed, wall time and code digest as attributes;
                          written to a temporary name, then renamed (atomic)
    OUT/grid.nc           every cell of the grid: one coordinate per swept parameter,
    plus ``run``

``<code>`` begins the digest of the computing packages
(:func:`moecl_lib.provenance.compute_digest`). A killed study loses only the cells in
flight; a rerun skips every cell whose file exists for the code running now (a cell
that other code computed is computed again, beside the old file), and a grid that gains
axis values reuses the cells it already has (the key names a cell's parameters, not its
position). netCDF files are written with the ``scipy`` engine (netCDF3: 32-bit
integers).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from moecl_lib.provenance import compute_digest
from moecl_lib.sweep.grid import GridSpec, cell_key, cell_seed

#: Per-run metrics of a cell (see moecl_lib.diagnostics.Specialisation for their
#: definitions).
METRICS = (
    "G_T",
    "F_T",
    "G_early",
    "purity_early",
    "purity_late",
    "purity_post",
    "coverage",
    "uniformity",
    "load_entropy_late",
    "T2",
)
ENGINE = "scipy"


CODE_CHARS = 12
"""Characters of the compute digest in a cell's file name."""


def cell_path(out: Path, spec: GridSpec, cell: Mapping[str, Any]) -> Path:
    """File of one cell's result computed by the code running now."""
    code = compute_digest()[:CODE_CHARS]
    return Path(out) / "cells" / f"{cell_key(spec, cell)}-{code}.nc"


def cell_dataset(
    spec: GridSpec,
    cell: Mapping[str, Any],
    metrics: Mapping[str, np.ndarray],
    seconds: float,
) -> xr.Dataset:
    """The dataset of one finished cell (dimension ``run``)."""
    data = {}
    for name in METRICS:
        x = np.asarray(metrics[name])
        x = x.astype(np.int32) if name == "T2" else x.astype(np.float64)
        data[name] = ("run", x)
    return xr.Dataset(
        data,
        coords={"run": np.arange(spec.runs, dtype=np.int32)},
        attrs={
            "key": cell_key(spec, cell),
            "cell": json.dumps(dict(cell), sort_keys=True),
            "params": json.dumps(spec.params(cell), sort_keys=True),
            "seed": cell_seed(spec, cell),
            "runs": spec.runs,
            "seconds": float(seconds),
            "code": compute_digest(),
        },
    )


def write_cell(
    out: Path, spec: GridSpec, cell: Mapping[str, Any], ds: xr.Dataset
) -> Path:
    """Write a cell's dataset atomically (temporary file, then rename)."""
    path = cell_path(out, spec, cell)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    ds.to_netcdf(tmp, engine=ENGINE)
    os.replace(tmp, path)
    return path


def read_cell(path: Path) -> xr.Dataset:
    """A stored cell, loaded into memory (the file is closed on return)."""
    with xr.open_dataset(path, engine=ENGINE) as ds:
        return ds.load()


def finished_cells(out: Path, spec: GridSpec) -> list[dict[str, Any]]:
    """Cells of ``spec`` whose result file, computed by the code running now, exists
    under ``out``."""
    return [c for c in spec.cells() if cell_path(out, spec, c).is_file()]


def _coord(values: tuple[Any, ...]) -> np.ndarray:
    if all(isinstance(v, str) for v in values):
        return np.array(values, dtype=str)
    if any(v is None or isinstance(v, (str, bool)) for v in values):
        return np.array(
            [json.dumps(v) for v in values], dtype=str
        )  # mixed: as JSON text
    return np.array(values)


def assemble(out: Path, spec: GridSpec) -> xr.Dataset:
    """Every cell of ``spec`` from ``out/cells`` as one dataset: dimensions = the axes
    (in the grid's order) then ``run``; plus ``seed`` and ``seconds`` per cell. Raises
    FileNotFoundError naming the first missing cell."""
    names = list(spec.axes)
    shape = spec.shape
    arrays = {
        m: np.empty(shape + (spec.runs,), dtype=np.int32 if m == "T2" else np.float64)
        for m in METRICS
    }
    seeds = np.empty(shape, dtype=np.int32)
    seconds = np.empty(shape, dtype=np.float64)
    for flat, cell in enumerate(spec.cells()):
        idx = np.unravel_index(flat, shape)
        path = cell_path(out, spec, cell)
        if not path.is_file():
            raise FileNotFoundError(f"cell {cell} has no result ({path})")
        ds = read_cell(path)
        for m in METRICS:
            arrays[m][idx] = ds[m].values
        seeds[idx] = ds.attrs["seed"]
        seconds[idx] = ds.attrs["seconds"]
    dims = tuple(names) + ("run",)
    coords = {n: _coord(v) for n, v in spec.axes.items()}
    coords["run"] = np.arange(spec.runs, dtype=np.int32)
    data = {m: (dims, a) for m, a in arrays.items()}
    data["seed"] = (tuple(names), seeds)
    data["seconds"] = (tuple(names), seconds)
    return xr.Dataset(
        data,
        coords=coords,
        attrs={"grid": json.dumps(spec.to_dict()), "name": spec.name},
    )


def write_dataset(ds: xr.Dataset, path: Path) -> Path:
    """Write an assembled dataset atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    ds.to_netcdf(tmp, engine=ENGINE)
    os.replace(tmp, path)
    return path
