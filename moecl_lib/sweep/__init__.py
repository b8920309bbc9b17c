"""Studies spread over processes and machines: grids of configurations x runs expanded
into cells, and independent calls, run on ``dask.distributed``.

Owns the grid file format (:mod:`.grid`: YAML read with ``yaml.safe_load``, validated
before anything runs), the per-cell store (:mod:`.store`: one netCDF file per finished
cell, assembled into one labelled ``xarray.Dataset``), the execution (:mod:`.execute`: a
``LocalCluster`` bound to 127.0.0.1, or an existing scheduler), independent calls in
order (:mod:`.tasks`: what the chapters use for their members and seeds), worker scaling
(:mod:`.scaling`) and the many-core cost model (:mod:`.cost`). A cell's result depends
only on its configuration and the grid's seed: its seed is derived from both
(:func:`.grid.cell_seed`), never from the order or the process it runs in.

May import the linear engine, the settings (:mod:`moecl_lib.analysis.calibration`) and
the routing diagnostics; the chapters (:mod:`moecl_lib.claims`) and the tooling import
it, nothing below them.
"""

from moecl_lib.sweep.execute import LOCALHOST, run_grid
from moecl_lib.sweep.grid import GridError, GridSpec, cell_seed, load_grid, parse_grid
from moecl_lib.sweep.store import assemble, cell_path, finished_cells

__all__ = [
    "LOCALHOST",
    "GridError",
    "GridSpec",
    "assemble",
    "cell_path",
    "cell_seed",
    "finished_cells",
    "load_grid",
    "parse_grid",
    "run_grid",
]
