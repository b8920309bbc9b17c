"""Command-line entry point ``moecl`` (declared in pyproject.toml as
``moecl_lib.tools.cli:main``).

Subcommands::

    moecl notebooks --profile {quick,paper} [--only STEM ...] [--inplace | --out DIR]
                    [-p NAME VALUE ...]
    moecl book [-- extra jupyter-book args]

Adding a subcommand (e.g. ``moecl bench``): write a ``configure(parser)`` function that
adds its arguments and a ``run(args) -> int`` function (exit status), then register both
with :func:`register`, either with the decorator in this module or from another module
listed in :data:`COMMAND_MODULES`::

    # moecl_lib/tools/bench.py
    from moecl_lib.tools.cli import register

    def _configure(p): p.add_argument("--quick", action="store_true")

    @register("bench", help="time the engine", configure=_configure)
    def run(args) -> int: ...

Imports of heavy packages (papermill, torch) belong inside ``run`` so that
``moecl --help`` stays fast. User errors (:class:`moecl_lib.tools.runner.RunnerError`,
:class:`moecl_lib.config.ConfigError`) are printed as one short message with exit status
2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from moecl_lib.paths import find_repo_root

Configure = Callable[[argparse.ArgumentParser], None]
Run = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Subcommand:
    """One ``moecl <name>`` subcommand."""

    name: str
    help: str
    configure: Configure
    run: Run


REGISTRY: dict[str, Subcommand] = {}
"""name -> Subcommand, in registration order (the order shown by ``moecl --help``)."""

COMMAND_MODULES: tuple[str, ...] = (
    "moecl_lib.tools.bench",
    "moecl_lib.tools.portability",
    "moecl_lib.tools.sweep_cli",
)
"""Optional modules that register more subcommands when imported; a module that does not
exist is skipped."""


def register(
    name: str, help: str, configure: Configure | None = None
) -> Callable[[Run], Run]:
    """Decorator registering ``run`` as subcommand ``name`` (a second registration of a
    name is an error)."""

    def deco(run: Run) -> Run:
        if name in REGISTRY:
            raise ValueError(f"moecl subcommand '{name}' registered twice")
        REGISTRY[name] = Subcommand(name, help, configure or (lambda p: None), run)
        return run

    return deco


def _load_command_modules() -> None:
    for mod in COMMAND_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:
            if (
                exc.name == mod
            ):  # optional module not written (yet): nothing to register
                continue
            print(
                f"moecl: warning: subcommands of {mod} unavailable: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )
        except Exception as exc:  # noqa: BLE001
            # a broken optional module must not break the other commands
            print(
                f"moecl: warning: subcommands of {mod} unavailable: "
                f"{type(exc).__name__}: {exc}",
                file=sys.stderr,
            )


# --------------------------------------------------------------------------------------
# moecl notebooks
# --------------------------------------------------------------------------------------


def _configure_notebooks(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        default="quick",
        help="quick = parameters cell as stored (default); paper = overrides from "
        "notebooks/profiles.yml",
    )
    p.add_argument(
        "--only",
        nargs="+",
        metavar="STEM",
        help="run only these notebooks (stem = file name without .ipynb)",
    )
    dest = p.add_mutually_exclusive_group()
    dest.add_argument(
        "--inplace",
        action="store_true",
        help="write outputs back into notebooks/<stem>.ipynb (refresh the committed "
        "quick outputs)",
    )
    dest.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output folder (default: book/generated)",
    )
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        default=[],
        help="extra override applied after the profile, value parsed as YAML (e.g. -p "
        "n_runs 2000)",
    )
    p.add_argument(
        "-x",
        "--fail-fast",
        action="store_true",
        help="stop at the first failing notebook",
    )
    p.add_argument(
        "--timeout",
        type=int,
        default=None,
        metavar="S",
        help="per-cell timeout in seconds (default: none)",
    )
    p.add_argument(
        "-j",
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="notebooks executed at once, one kernel each (default 1; outputs do not "
        "depend on it)",
    )
    from moecl_lib.tools.notebook_cache import CACHE_MODES

    p.add_argument(
        "--cache",
        choices=CACHE_MODES,
        default="off",
        help="executed chapters kept by their inputs (library, notebook, parameters, "
        "lock, data, machine) in $MOECL_CACHE_DIR or ~/.cache/moecl/notebooks: use = "
        "reuse a chapter whose inputs are unchanged, refresh = run and store every "
        "one, off = neither (default)",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root (default: found from the current folder)",
    )


@register(
    "notebooks",
    help="execute notebooks/*.ipynb with papermill under a profile",
    configure=_configure_notebooks,
)
def _run_notebooks(args: argparse.Namespace) -> int:
    from moecl_lib.tools import notebook_profiles, runner

    root = args.root.resolve() if args.root else find_repo_root()
    extra = {
        name: notebook_profiles.parse_cli_value(value) for name, value in args.parameter
    }
    if args.inplace and args.profile != notebook_profiles.QUICK:
        print(
            f"warning: --inplace with profile '{args.profile}': committed notebooks "
            "should hold QUICK outputs (nbval compares them)",
            file=sys.stderr,
        )
    results = runner.run_notebooks(
        root,
        args.profile,
        args.only,
        inplace=args.inplace,
        out_dir=args.out,
        extra=extra,
        fail_fast=args.fail_fast,
        timeout=args.timeout,
        jobs=args.jobs,
        cache=args.cache,
    )
    return 0 if results and all(r.ok for r in results) else 1


# --------------------------------------------------------------------------------------
# moecl expect
# --------------------------------------------------------------------------------------


def _configure_expect(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "stems",
        nargs="+",
        metavar="STEM",
        help="chapters whose stored quick outputs hold a record",
    )
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root (default: found from the current folder)",
    )


@register(
    "expect",
    help="store the record of notebooks/STEM.ipynb as notebooks/expected/STEM.json",
    configure=_configure_expect,
)
def _run_expect(args: argparse.Namespace) -> int:
    import json

    from moecl_lib.claims.record import (
        expected_path,
        record_from_notebook,
        write_expected,
    )
    from moecl_lib.tools import runner

    root = args.root.resolve() if args.root else find_repo_root()
    for stem in args.stems:
        nb_path = root / "notebooks" / f"{stem}.ipynb"
        if not nb_path.is_file():
            raise runner.RunnerError(f"no notebook {nb_path.relative_to(root)}")
        rec = record_from_notebook(json.loads(nb_path.read_text(encoding="utf-8")))
        if rec is None:
            raise runner.RunnerError(
                f"{stem}: the stored outputs hold no record (run it with --inplace "
                "first)"
            )
        path = write_expected(rec, expected_path(stem, root))
        print(
            f"{stem}: {len(rec.quantities)} quantities, {len(rec.checks)} checks -> "
            f"{path.relative_to(root)}"
        )
    print(
        "re-run the notebooks with --inplace so that their stored comparison line "
        "matches"
    )
    return 0


# --------------------------------------------------------------------------------------
# moecl book
# --------------------------------------------------------------------------------------


def _configure_book(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--root",
        type=Path,
        default=None,
        help="repository root (default: found from the current folder)",
    )
    p.add_argument(
        "extra",
        nargs=argparse.REMAINDER,
        help="extra arguments for jupyter-book build (after --)",
    )


@register(
    "book",
    help="build the HTML book (jupyter-book build -W -n --keep-going book/)",
    configure=_configure_book,
)
def _run_book(args: argparse.Namespace) -> int:
    from moecl_lib.tools import book_build, runner
    from moecl_lib.tools.status import unmatched_numbers, write_status_page

    root = args.root.resolve() if args.root else find_repo_root()
    book_build.check_book_inputs(root)
    write_status_page(root / "book")
    missing = unmatched_numbers(root / "book")
    if missing:
        print(
            "status page quotes numbers that its chapters did not print: "
            + "; ".join(missing[:20]),
            file=sys.stderr,
        )
        return 1
    profiles = runner.generated_profiles(root)
    print(
        "rendering book/generated/: "
        + ", ".join(f"{k} ({v})" for k, v in profiles.items()),
        flush=True,
    )
    not_paper = sorted(k for k, v in profiles.items() if v != "paper")
    if not_paper:
        print(
            f"note: not from the paper profile: {', '.join(not_paper)} (the published "
            "book uses `moecl notebooks --profile paper`)",
            flush=True,
        )
    extra = [a for a in args.extra if a != "--"]
    cmd = book_build.book_command(root, extra)
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, cwd=root)
    dt = time.perf_counter() - t0
    index = root / "book" / "_build" / "html" / "index.html"
    if rc == 0:
        print(f"book built in {dt:.1f} s: {index}")
    else:
        print(
            f"book build FAILED (exit {rc}) after {dt:.1f} s; see the warnings above "
            "and book/_build/html/reports/",
            file=sys.stderr,
        )
    return rc


# moecl bench: to be added (see the module docstring; e.g. in moecl_lib/tools/bench.py,
# listed in COMMAND_MODULES).


# --------------------------------------------------------------------------------------
# entry point
# --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The ``moecl`` argument parser with every registered subcommand."""
    _load_command_modules()
    parser = argparse.ArgumentParser(
        prog="moecl", description="moecl companion: run notebooks, build the book."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for cmd in REGISTRY.values():
        sp = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(sp)
        sp.set_defaults(_run=cmd.run)
    return parser


def _user_error_types() -> tuple[type[BaseException], ...]:
    from moecl_lib.tools.runner import RunnerError

    types: list[type[BaseException]] = [RunnerError]
    try:
        from moecl_lib.config import ConfigError

        types.append(ConfigError)
    except (
        ImportError
    ):  # config module not importable: only runner errors are user errors
        pass
    return tuple(types)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``moecl``; returns the exit status (0 ok, 1 a notebook/book failed, 2 bad
    input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args))
    except _user_error_types() as exc:
        print(f"moecl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # python -m moecl_lib.tools.cli: use the registry of the importable module, not
    # __main__'s
    from moecl_lib.tools.cli import main as _main

    sys.exit(_main())
