"""``moecl portability``: the quick-profile chapter checks under other CPU kernels.

Each *variant* sets environment variables that select other compute kernels in torch
(``ATEN_CPU_CAPABILITY``), OpenBLAS (``OPENBLAS_CORETYPE``), numba (``NUMBA_CPU_NAME``)
and numpy (``NPY_DISABLE_CPU_FEATURES``), then runs every chapter notebook under the
quick profile into a scratch folder. Each chapter compares its record with the stored
expectation (``notebooks/expected/``) and fails on a number moved beyond its tolerance
or on a changed verdict, so a variant passes when every chapter does. Only kernels this
CPU supports are offered.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from moecl_lib.tools.cli import register

#: CPU kernel families of numpy's dispatcher that the ``no-avx512`` variant disables
#: (numpy 2.x names).
NUMPY_AVX512_FEATURES = (
    "X86_V4",
    "AVX512_ICL",
    "AVX512_SPR",
    "AVX512_SKX",
    "AVX512_CLX",
    "AVX512_CNL",
    "AVX512F",
    "AVX512CD",
)


def _torch_capability() -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import torch; print(torch.backends.cpu.get_cpu_capability())",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=_clean_env(),
    )
    return out.stdout.strip().upper() or "DEFAULT"


def _numpy_avx512() -> str:
    """The AVX-512 dispatch targets numpy can use here, as ``NPY_DISABLE_CPU_FEATURES``
    wants them."""
    code = (
        "from numpy._core import _multiarray_umath as m; "
        "print(' '.join(f for f in m.__cpu_dispatch__ if m.__cpu_features__.get(f)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=_clean_env(),
    )
    return " ".join(f for f in out.stdout.split() if f in NUMPY_AVX512_FEATURES)


def _clean_env() -> dict[str, str]:
    env = dict(os.environ)
    for k in (
        "ATEN_CPU_CAPABILITY",
        "OPENBLAS_CORETYPE",
        "NUMBA_CPU_NAME",
        "NPY_DISABLE_CPU_FEATURES",
    ):
        env.pop(k, None)
    return env


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def variants() -> dict[str, dict[str, str]]:
    """name -> environment overrides, for the kernels this CPU supports (``as-is``
    changes nothing)."""
    flags = cpu_flags()
    avx2, avx512 = "avx2" in flags, "avx512f" in flags
    out: dict[str, dict[str, str]] = {
        "as-is": {},
        "aten-default": {"ATEN_CPU_CAPABILITY": "default"},
    }
    if avx2:
        out["aten-avx2"] = {"ATEN_CPU_CAPABILITY": "avx2"}
    if avx512 and _torch_capability().startswith("AVX512"):
        out["aten-avx512"] = {"ATEN_CPU_CAPABILITY": "avx512"}
    if "OPENBLAS_CORETYPE" in os.environ:
        out["openblas-unset"] = {}  # run_variant removes the variable
    if avx2:
        out["openblas-haswell"] = {"OPENBLAS_CORETYPE": "Haswell"}
    if "avx" in flags:
        out["openblas-sandybridge"] = {"OPENBLAS_CORETYPE": "Sandybridge"}
    out["numba-generic"] = {"NUMBA_CPU_NAME": "generic"}
    npy = _numpy_avx512() if avx512 else ""
    if npy:
        out["numpy-no-avx512"] = {"NPY_DISABLE_CPU_FEATURES": npy}
    other = {"ATEN_CPU_CAPABILITY": "default", "NUMBA_CPU_NAME": "generic"}
    if avx2:
        other["OPENBLAS_CORETYPE"] = "Haswell"
    if npy:
        other["NPY_DISABLE_CPU_FEATURES"] = npy
    out["other-machine"] = other
    return out


def run_variant(
    name: str,
    overrides: Mapping[str, str],
    out_dir: Path,
    jobs: int,
    only: Sequence[str] | None,
    root: Path,
) -> tuple[bool, float]:
    """Run the quick-profile notebooks with ``overrides`` on top of the environment
    (``openblas-unset`` removes ``OPENBLAS_CORETYPE``); returns (passed, wall
    seconds)."""
    env = dict(os.environ)
    if name == "openblas-unset":
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    env.update(overrides)
    cmd = [
        sys.executable,
        "-m",
        "moecl_lib.tools.cli",
        "notebooks",
        "--profile",
        "quick",
        "--jobs",
        str(jobs),
        "--out",
        str(out_dir / name),
        "--root",
        str(root),
    ]
    if only:
        cmd += ["--only", *only]
    shown = (
        " ".join(f"{k}={v!r}" for k, v in overrides.items()) or "(environment as is)"
    )
    print(f"== variant {name}: {shown}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.call(cmd, env=env, cwd=root)
    return rc == 0, time.perf_counter() - t0


def _configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--variants",
        nargs="+",
        metavar="NAME",
        help="variants to run (default: all supported)",
    )
    p.add_argument(
        "--list", action="store_true", help="list the supported variants and exit"
    )
    p.add_argument("--only", nargs="+", metavar="STEM", help="only these chapters")
    p.add_argument(
        "-j", "--jobs", type=int, default=2, help="notebooks at once (default 2)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="scratch folder (default: a temporary folder)",
    )


@register(
    "portability",
    help="run the quick-profile chapter checks under other CPU kernels",
    configure=_configure,
)
def run(args: argparse.Namespace) -> int:
    from moecl_lib.paths import RunnerError, find_repo_root

    table = variants()
    if args.list:
        for name, env in table.items():
            print(
                f"{name:22s} "
                f"{' '.join(f'{k}={v!r}' for k, v in env.items()) or '(as is)'}"
            )
        return 0
    chosen = args.variants or list(table)
    unknown = [v for v in chosen if v not in table]
    if unknown:
        raise RunnerError(
            f"unknown or unsupported variant(s) {unknown}; supported here: "
            f"{list(table)}"
        )
    root = find_repo_root()
    out = args.out or Path(tempfile.mkdtemp(prefix="moecl-portability-"))
    results = []
    for name in chosen:
        ok, dt = run_variant(name, table[name], out, args.jobs, args.only, root)
        results.append((name, ok, dt))
    print(
        "\nportability matrix (quick profile; each chapter compares its record with "
        "notebooks/expected/):"
    )
    for name, ok, dt in results:
        env = " ".join(f"{k}={v}" for k, v in table[name].items()) or "-"
        print(f"  {name:22s} {'pass' if ok else 'FAIL':5s} {dt:7.1f} s   {env}")
    return 0 if all(ok for _, ok, _ in results) else 1
