"""Study grids (moecl_lib.sweep): validation, cell seeds, storage, resumption, Dask vs
inline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from moecl_lib.analysis.routing import specialisation
from moecl_lib.linear.engine import simulate
from moecl_lib.provenance import compute_digest
from moecl_lib.sweep import (
    GridError,
    assemble,
    cell_path,
    cell_seed,
    finished_cells,
    parse_grid,
    run_grid,
)
from moecl_lib.sweep import execute as sweep_execute
from moecl_lib.sweep import store as sweep_store
from moecl_lib.sweep.execute import SweepError, local_cluster
from moecl_lib.sweep.grid import cell_key
from moecl_lib.sweep.store import METRICS, read_cell
from moecl_lib.tools.cli import main

TINY = {
    "name": "tiny",
    "base": {"n_tasks": 3, "d": 6, "s": 3, "T": 40, "n_experts": 3},
    "axes": {"eta": [0.25, 1.0], "lam": [0.1, 0.3]},
    "runs": 4,
    "seed": 7,
}


def grid(**changes):
    data = json.loads(json.dumps(TINY))
    data.update(changes)
    return parse_grid(data, "tiny.yml")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"axes": {"etaa": [0.5]}}, "axes.etaa: unknown parameter"),
        ({"axes": {"eta": []}}, "axes.eta must be a non-empty list"),
        ({"axes": {}}, "axes must map at least one field"),
        ({"axes": {"eta": [0.5, 0.5]}}, "repeats a value"),
        ({"axes": {"eta": [-1.0]}}, "cell {'eta': -1.0}: eta="),
        ({"axes": {"n_runs": [2]}}, "runs and seed are set at the top"),
        ({"runs": 0}, "runs: 0 must be an integer >= 1"),
        ({"runs": True}, "runs: True must be an integer >= 1"),
        ({"extra": 1}, "unknown key(s) ['extra']"),
        ({"axes": {"eta": [[1, 2]]}}, "must be a number, a string"),
        ({"base": {"setting": "guess", "n_experts": 3}}, "base.setting='guess'"),
    ],
)
def test_bad_grids_fail_in_one_line(changes, message):
    with pytest.raises(GridError) as err:
        grid(**changes)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_cells_are_the_product_in_axis_order():
    spec = grid()
    assert spec.shape == (2, 2) and spec.n_cells == 4
    assert list(spec.cells())[1] == {"eta": 0.25, "lam": 0.3}


def test_settings_are_an_axis():
    spec = grid(
        base={"n_experts": 4, "T": 30},
        axes={"setting": ["recalled", "calibrated"]},
    )
    rec, cal = (spec.config(c) for c in spec.cells())
    assert (rec.signal_scale, cal.signal_scale) == (1.0, 5.0)
    assert cal.T1 == 120 and cal.n_runs == 4


def test_cell_seed_depends_on_the_cell_only():
    small, large = grid(), grid(axes={"eta": [0.25, 0.5, 1.0], "lam": [0.1, 0.3]})
    cell = {"eta": 1.0, "lam": 0.3}
    assert cell_seed(small, cell) == cell_seed(large, cell)
    assert cell_key(small, cell) == cell_key(large, cell)
    seeds = {cell_seed(small, c) for c in small.cells()}
    assert len(seeds) == 4 and all(0 <= s < 2**31 for s in seeds)
    assert cell_seed(grid(seed=8), cell) != cell_seed(small, cell)
    # an int and a float value are different cells
    assert cell_key(grid(axes={"eta": [1]}), {"eta": 1}) != cell_key(
        grid(axes={"eta": [1.0]}), {"eta": 1.0}
    )


def test_paired_axes_share_seeds():
    spec = grid(
        axes={"termination": ["gap", "freeze_at_T1"], "eta": [0.5, 1.0]},
        paired=["termination"],
    )
    seeds = {(c["termination"], c["eta"]): cell_seed(spec, c) for c in spec.cells()}
    assert seeds["gap", 0.5] == seeds["freeze_at_T1", 0.5] != seeds["gap", 1.0]
    assert len({cell_key(spec, c) for c in spec.cells()}) == 4
    unpaired = grid(axes={"termination": ["gap", "freeze_at_T1"]})
    assert len({cell_seed(unpaired, c) for c in unpaired.cells()}) == 2
    with pytest.raises(GridError, match="paired must list axes"):
        grid(paired=["T"])


def test_a_cell_is_its_simulation(tmp_path):
    spec = grid()
    ds = run_grid(spec, tmp_path, scheduler="inline", progress=False)
    cell = {"eta": 1.0, "lam": 0.1}
    sp = specialisation(simulate(spec.config(cell)))
    got = ds.sel(cell)
    np.testing.assert_array_equal(got["G_T"].values, sp.G_T)
    np.testing.assert_array_equal(got["purity_early"].values, sp.purity_early)
    np.testing.assert_array_equal(got["T2"].values, sp.T2)
    assert int(got["seed"]) == cell_seed(spec, cell)
    on_disk = xr.open_dataset(tmp_path / "grid.nc", engine="scipy").load()
    xr.testing.assert_identical(on_disk, ds)
    assert json.loads(ds.attrs["grid"])["axes"] == {
        "eta": [0.25, 1.0],
        "lam": [0.1, 0.3],
    }


def test_rerun_skips_finished_cells_and_a_grown_grid_reuses_them(tmp_path, monkeypatch):
    spec = grid()
    first = run_grid(spec, tmp_path, scheduler="inline", progress=False)
    calls: list[float] = []
    real = sweep_execute.run_cell

    def counting(params, runs, seed, window):
        calls.append(params["eta"])
        return real(params, runs, seed, window)

    monkeypatch.setattr(sweep_execute, "run_cell", counting)
    again = run_grid(spec, tmp_path, scheduler="inline", progress=False)
    assert calls == []
    xr.testing.assert_identical(first, again)
    grown = grid(axes={"eta": [0.25, 0.5, 1.0], "lam": [0.1, 0.3]})
    bigger = run_grid(grown, tmp_path, scheduler="inline", progress=False)
    assert calls == [0.5, 0.5]
    xr.testing.assert_identical(
        bigger.sel(eta=[0.25, 1.0]).drop_attrs(), first.drop_attrs()
    )


def test_cells_computed_by_other_code_are_computed_again(tmp_path, monkeypatch):
    spec = grid()
    first = run_grid(spec, tmp_path, scheduler="inline", progress=False)
    cell = {"eta": 1.0, "lam": 0.3}
    assert read_cell(cell_path(tmp_path, spec, cell)).attrs["code"] == compute_digest()
    calls: list[dict] = []
    real = sweep_execute.run_cell

    def counting(params, runs, seed, window):
        calls.append({"eta": params["eta"], "lam": params["lam"]})
        return real(params, runs, seed, window)

    monkeypatch.setattr(sweep_execute, "run_cell", counting)
    monkeypatch.setattr(sweep_store, "compute_digest", lambda: "f" * 64)  # new engine
    assert finished_cells(tmp_path, spec) == []
    again = run_grid(spec, tmp_path, scheduler="inline", progress=False)
    assert len(calls) == spec.n_cells
    xr.testing.assert_identical(first.drop_vars("seconds"), again.drop_vars("seconds"))
    assert len(list((tmp_path / "cells").glob("*.nc"))) == 2 * spec.n_cells
    monkeypatch.undo()
    assert len(finished_cells(tmp_path, spec)) == spec.n_cells  # the first code's


def test_a_failing_cell_keeps_the_finished_ones(tmp_path, monkeypatch):
    spec = grid()
    real = sweep_execute.run_cell

    def failing(params, runs, seed, window):
        if params["eta"] == 1.0:
            raise FloatingPointError("boom")
        return real(params, runs, seed, window)

    monkeypatch.setattr(sweep_execute, "run_cell", failing)
    with pytest.raises(
        SweepError, match=r"cell \{'eta': 1.0, 'lam': 0.1\}: FloatingPointError"
    ):
        run_grid(spec, tmp_path, scheduler="inline", progress=False)
    assert [c["eta"] for c in finished_cells(tmp_path, spec)] == [0.25, 0.25]
    with pytest.raises(FileNotFoundError, match="has no result"):
        assemble(tmp_path, spec)


@pytest.fixture(scope="module")
def cluster2():
    """One local cluster of two workers for the tests of this module."""
    with local_cluster(2) as cluster:
        yield cluster


def test_dask_local_cluster_equals_inline_bit_for_bit(tmp_path, cluster2):
    spec = grid()
    inline = run_grid(spec, tmp_path / "inline", scheduler="inline", progress=False)
    address = cluster2.scheduler_address
    dask = run_grid(spec, tmp_path / "dask", scheduler=address, progress=False)
    xr.testing.assert_identical(inline.drop_vars("seconds"), dask.drop_vars("seconds"))
    assert all(cell_path(tmp_path / "dask", spec, c).is_file() for c in spec.cells())


def test_local_cluster_listens_on_localhost_only(cluster2):
    from distributed import Client

    with Client(cluster2) as client:
        info = client.scheduler_info()
        addresses = [cluster2.scheduler_address, *info["workers"]]
    assert len(addresses) == 3
    assert all(a.startswith("tcp://127.0.0.1:") for a in addresses), addresses
    assert cluster2.dashboard_link.startswith("http://127.0.0.1:")


def test_default_local_cluster_runs_the_grid(tmp_path, monkeypatch):
    """scheduler=None starts (and closes) a local cluster: here of one worker."""
    spec = grid(axes={"eta": [0.5]})
    ds = run_grid(spec, tmp_path, workers=1, progress=False)
    assert ds.sizes == {"eta": 1, "run": 4}


def test_cli_bad_grid_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "bad.yml"
    path.write_text("axes: {eta: [0.5]}\nruns: 2\nbase: {n_expert: 3}\n")
    assert main(["sweep", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("moecl sweep: error:") and "base.n_expert" in err
    assert "\n" not in err
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    assert main(["sweep", str(path)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_cli_check_and_run(tmp_path, capsys):
    path = tmp_path / "g.yml"
    path.write_text(json.dumps(TINY))  # JSON is YAML
    assert main(["sweep", str(path), "--check", "--out", str(tmp_path / "o")]) == 0
    assert "4 cells x 4 runs" in capsys.readouterr().out
    assert not (tmp_path / "o").exists()
    args = ["sweep", str(path), "--out", str(tmp_path / "o"), "--scheduler", "inline"]
    assert main([*args, "--no-progress"]) == 0
    assert (tmp_path / "o" / "grid.nc").is_file()
    assert set(METRICS) <= set(
        xr.open_dataset(tmp_path / "o" / "grid.nc", engine="scipy")
    )


def test_example_grid_is_valid():
    from moecl_lib.sweep import load_grid

    spec = load_grid(Path(__file__).resolve().parents[1] / "grids" / "example.yml")
    assert spec.n_cells == 9


def test_loopback_cluster_from_the_command_line_equals_inline(tmp_path):
    """A scheduler and two worker processes started as commands (`dask scheduler`, `dask
    worker`) on 127.0.0.1 give the in-process results bit for bit."""
    import subprocess
    import sys
    import time

    dask = Path(sys.executable).with_name("dask")
    sched_file = tmp_path / "scheduler.json"
    common = ["--no-dashboard"]
    procs = [
        subprocess.Popen(
            [str(dask), "scheduler", "--host", "127.0.0.1", "--port", "0"]
            + ["--scheduler-file", str(sched_file), *common],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    try:
        deadline = time.monotonic() + 60
        while not sched_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(sched_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        procs.append(
            subprocess.Popen(
                [str(dask), "worker", address, "--host", "127.0.0.1"]
                + ["--nworkers", "2", "--nthreads", "1", *common],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        spec = grid()
        inline = run_grid(spec, tmp_path / "inline", scheduler="inline", progress=False)
        loop = run_grid(spec, tmp_path / "loop", scheduler=address, progress=False)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            p.wait(timeout=30)
    xr.testing.assert_identical(inline.drop_vars("seconds"), loop.drop_vars("seconds"))


def test_scaling_rows_add_up():
    from moecl_lib.sweep.scaling import measure_scaling, scaling_grid, scaling_table

    spec = scaling_grid(n_side=2, runs=2, T=20)
    rows, same = measure_scaling(spec, workers=(1,))
    assert same and len(rows) == 1 and rows[0].speedup == 1.0
    r = rows[0]
    assert 0 < r.compute_s <= r.wall_s
    assert r.overhead_per_cell_s == pytest.approx((r.wall_s - r.compute_s) / 4)
    assert "4 cells x 2 runs" in scaling_table(rows, spec)
