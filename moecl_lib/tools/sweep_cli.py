"""``moecl sweep GRID.yml``: run a study grid (see :mod:`moecl_lib.sweep.grid` for the
file format)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from moecl_lib.tools.cli import register


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("grid", type=Path, help="grid file (YAML)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output folder (default: results/sweeps/<grid name>); "
        "finished cells are kept",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="address of a running Dask scheduler (default: a local cluster on "
        "127.0.0.1; 'inline' runs in this process)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="local cluster processes (default: cores)",
    )
    p.add_argument("--tls-ca-file", default=None, help="TLS: CA of a remote cluster")
    p.add_argument("--tls-cert", default=None, help="TLS: this client's certificate")
    p.add_argument("--tls-key", default=None, help="TLS: this client's private key")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--check", action="store_true", help="validate the grid, run nothing"
    )


@register(
    "sweep", help="run a study grid on Dask (moecl_lib.sweep)", configure=_configure
)
def run(args: argparse.Namespace) -> int:
    from moecl_lib.sweep.grid import GridError, load_grid

    try:
        spec = load_grid(args.grid)
    except GridError as exc:
        print(f"moecl sweep: error: {exc}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print("moecl sweep: error: --workers must be >= 1", file=sys.stderr)
        return 2
    out = args.out or Path("results") / "sweeps" / spec.name
    print(
        f"grid {spec.name}: {spec.n_cells} cells x {spec.runs} runs, axes "
        + ", ".join(f"{k} ({len(v)})" for k, v in spec.axes.items())
        + f" -> {out}"
    )
    if args.check:
        return 0
    security = None
    if args.tls_ca_file or args.tls_cert or args.tls_key:
        from distributed.security import Security

        security = Security(
            tls_ca_file=args.tls_ca_file,
            tls_client_cert=args.tls_cert,
            tls_client_key=args.tls_key,
            require_encryption=True,
        )
    from moecl_lib.sweep.execute import SweepError, run_grid

    try:
        ds = run_grid(
            spec,
            out,
            scheduler=args.scheduler,
            workers=args.workers,
            security=security,
            progress=not args.no_progress,
        )
    except SweepError as exc:
        print(f"moecl sweep: {exc}", file=sys.stderr)
        return 1
    print(
        f"wrote {out / 'grid.nc'}: "
        + ", ".join(f"{k}={v}" for k, v in ds.sizes.items())
    )
    return 0


def _configure_scaling(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--side", type=int, default=10, help="cells per axis (grid = side^2)"
    )
    p.add_argument("--runs", type=int, default=8, help="runs per cell")
    p.add_argument("--T", type=int, default=300, help="rounds per run")
    p.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts"
    )
    p.add_argument(
        "--estimate",
        metavar="GRID.yml",
        help="then model the cost of this grid (refined 1x, 2x, 4x, 10x) on --cores "
        "cores from the rates measured here (moecl_lib.sweep.cost)",
    )
    p.add_argument("--cores", type=int, default=1000, help="cores of the estimate")


@register(
    "scaling",
    help="time a study grid on local clusters of 1, 2, ... workers "
    "(moecl_lib.sweep.scaling)",
    configure=_configure_scaling,
)
def run_scaling(args: argparse.Namespace) -> int:
    from moecl_lib.sweep.scaling import measure_scaling, scaling_grid, scaling_table

    if min(args.side, args.runs, args.T, args.cores, *args.workers) < 1:
        print(
            "moecl scaling: error: sizes and worker counts must be >= 1",
            file=sys.stderr,
        )
        return 2
    spec = scaling_grid(args.side, args.runs, args.T)
    rows, same = measure_scaling(spec, args.workers)
    print(scaling_table(rows, spec))
    print("results identical across worker counts: " + ("yes" if same else "NO"))
    if args.estimate:
        from moecl_lib.sweep.cost import cost_table, measure_rates
        from moecl_lib.sweep.grid import load_grid

        target = load_grid(args.estimate)
        rates = measure_rates(target, rows[0].overhead_per_cell_s, rows[0].startup_s)
        print(cost_table(target, rates, (1, 2, 4, 10), args.cores))
    return 0 if same else 1
