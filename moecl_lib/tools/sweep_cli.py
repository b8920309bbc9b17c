"""``moecl sweep GRID.yml``: run a study grid (see :mod:`moecl_lib.sweep.grid` for the file format)."""

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
        help="output folder (default: results/sweeps/<grid name>); finished cells are kept",
    )
    p.add_argument(
        "--scheduler",
        default=None,
        help="address of a running Dask scheduler (default: a local cluster on 127.0.0.1; "
        "'inline' runs in this process)",
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
