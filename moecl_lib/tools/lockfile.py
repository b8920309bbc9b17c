"""The lock files of the Python environment (``lock/*.txt``) and the checks that keep
them honest.

``lock/dev.txt`` pins every package of the project's venv (``pyproject.toml``'s
dependencies and its ``[dev]`` extra, plus pip and the build backend) to one version and
its sha256 hashes, for CPython 3.11 on Linux x86-64. ``make lock`` writes it with
``uv pip compile``; ``make setup`` installs exactly it (``uv pip sync``) and then the
project itself (``--no-deps``, editable). ``lock/lab.txt`` does the same for the
JupyterLab front end of ``make lab`` (its own venv) and ``lock/uv.txt`` for the
installer.

Used three ways:

* :func:`lock_hash` gives the sha256 of ``lock/dev.txt``, for the book's
  build-information page;
* ``tests/test_lock.py`` calls :func:`pyproject_problems` and :func:`freeze_problems`;
* the Makefile runs this file as a script (standard library only until ``packaging`` is
  installed)::

    # pip freeze == lock
    python moecl_lib/tools/lockfile.py check-venv --python .venv/bin/python lock/dev.txt
    # pyproject <-> locks
    python moecl_lib/tools/lockfile.py check-pyproject
    # uv's index arguments
    python moecl_lib/tools/lockfile.py sources --installer uv lock/dev.txt
    # input of lock/lab.txt
    python moecl_lib/tools/lockfile.py extra-requirements lab
    # sha256 of lock/dev.txt
    python moecl_lib/tools/lockfile.py hash
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCK_DIR = ROOT / "lock"
DEV_LOCK = LOCK_DIR / "dev.txt"
LAB_LOCK = LOCK_DIR / "lab.txt"
UV_LOCK = LOCK_DIR / "uv.txt"
PYPROJECT = ROOT / "pyproject.toml"

#: What the locks are resolved for (``make lock`` passes the same to
#: ``uv pip compile``). Python 3.11.0, not the patch release of the machine that wrote
#: the lock, so that the lock also installs on an older 3.11.x.
TARGET_PYTHON = "3.11"
TARGET_PLATFORM = "x86_64-manylinux_2_28"
#: PEP 508 marker environment of that target, for the requirements of pyproject.toml
#: that carry a marker.
MARKER_ENV: dict[str, str] = {
    "python_version": "3.11",
    "python_full_version": "3.11.0",
    "implementation_name": "cpython",
    "implementation_version": "3.11.0",
    "platform_python_implementation": "CPython",
    "os_name": "posix",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "extra": "",
}
#: PyTorch's CPU wheel index: where ``torch==<v>+cpu`` comes from on a machine without a
#: local copy of the wheel.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
PYPI_SIMPLE = "https://pypi.org/simple"

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?\s*==\s*([^\s;\\]+)")
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def canonical(name: str) -> str:
    """PEP 503 normalised project name (``Jinja2`` -> ``jinja2``, ``jupyter_client`` ->
    ``jupyter-client``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Pin:
    """One locked package: name (canonical), exact version, sha256 hashes of its allowed
    files."""

    name: str
    version: str
    hashes: tuple[str, ...]


class LockError(ValueError):
    """A lock file that is not a list of ``name==version --hash=...`` entries."""


def read_lock(path: Path | str = DEV_LOCK) -> dict[str, Pin]:
    """Parse a lock written by ``uv pip compile --generate-hashes``: canonical name ->
    :class:`Pin`.

    Every requirement must be an exact ``==`` pin; comments and option lines
    (``--index-url ...``) are skipped.
    """
    path = Path(path)
    pins: dict[str, Pin] = {}
    entries: list[tuple[str, str, list[str]]] = []
    # join the backslash continuations: one logical line per requirement
    logical, buf = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = (
            raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        )
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    if buf:
        logical.append(buf)
    for line in logical:
        text = line.strip()
        if not text or text.startswith("-"):
            continue
        m = _PIN.match(text)
        if not m:
            raise LockError(f"{path.name}: not an exact pin: {text.split()[0]!r}")
        entries.append((canonical(m[1]), m[2], _HASH.findall(text)))
    for name, version, hashes in entries:
        if name in pins:
            raise LockError(f"{path.name}: {name} pinned twice")
        pins[name] = Pin(name, version, tuple(hashes))
    return pins


def lock_hash(path: Path | str = DEV_LOCK) -> str:
    """sha256 (hex) of the lock file's bytes: names the exact environment a build
    used."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


# ------------------------------------------------------------------- pyproject <-> lock


def _pyproject(path: Path | str = PYPROJECT) -> dict:
    import tomllib  # Python >= 3.11

    return tomllib.loads(Path(path).read_text(encoding="utf-8"))


def requirements(
    pyproject: Mapping,
    extras: Iterable[str] = (),
    base: bool = True,
    build: bool = False,
) -> list[str]:
    """Requirement strings of ``pyproject``: its dependencies (``base``), the given
    extras and build-system."""
    proj = pyproject["project"]
    out: list[str] = list(proj.get("dependencies", [])) if base else []
    optional = proj.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise KeyError(f"pyproject.toml has no extra [{extra}]")
        out += optional[extra]
    if build:
        out += pyproject.get("build-system", {}).get("requires", [])
    return out


def pin_problems(
    reqs: Iterable[str], pins: Mapping[str, Pin], lock_name: str
) -> list[str]:
    """What in ``reqs`` the pins do not satisfy: a missing pin, or a pinned version
    outside the specifier."""
    from packaging.requirements import Requirement
    from packaging.version import Version

    problems = []
    for text in reqs:
        req = Requirement(text)
        if req.marker is not None and not req.marker.evaluate(MARKER_ENV):
            continue  # not for CPython 3.11 on Linux x86-64
        pin = pins.get(canonical(req.name))
        if pin is None:
            problems.append(
                f"{req.name}: required by pyproject.toml ({text}) but not pinned in "
                f"{lock_name}"
            )
        elif not req.specifier.contains(Version(pin.version), prereleases=True):
            problems.append(
                f"{req.name}=={pin.version} in {lock_name} violates pyproject.toml's "
                f"{text!r}"
            )
    return problems


def hash_problems(pins: Mapping[str, Pin], lock_name: str) -> list[str]:
    return [
        f"{p.name}=={p.version} in {lock_name} has no sha256 hash"
        for p in pins.values()
        if not p.hashes
    ]


def pyproject_problems(
    pyproject_path: Path | str = PYPROJECT,
    dev_lock: Path | str = DEV_LOCK,
    lab_lock: Path | str | None = LAB_LOCK,
) -> list[str]:
    """Disagreements between pyproject.toml and the locks; empty when ``make lock`` is
    up to date.

    * every dependency, every ``[dev]`` requirement and the build backend has a pin in
      ``dev_lock`` that satisfies its specifier, and every entry has hashes;
    * every ``[lab]`` requirement has such a pin in ``lab_lock``, and a package in both
      locks has one version.
    """
    pyproject = _pyproject(pyproject_path)
    dev = read_lock(dev_lock)
    problems = pin_problems(
        requirements(pyproject, ["dev"], build=True), dev, Path(dev_lock).name
    )
    problems += hash_problems(dev, Path(dev_lock).name)
    if lab_lock is not None:
        lab = read_lock(lab_lock)
        name = Path(lab_lock).name
        problems += pin_problems(
            requirements(pyproject, ["lab"], base=False), lab, name
        )
        problems += hash_problems(lab, name)
        problems += [
            f"{n}: {lab[n].version} in {name} but {dev[n].version} in "
            f"{Path(dev_lock).name}"
            for n in sorted(set(lab) & set(dev))
            if lab[n].version != dev[n].version
        ]
    return problems


# ------------------------------------------------------------------------- venv == lock


def parse_freeze(text: str) -> tuple[dict[str, str], list[str]]:
    """``pip freeze --all`` output -> (canonical name -> version, the other lines:
    editables, direct URLs)."""
    versions: dict[str, str] = {}
    other: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _PIN.match(line)
        if m and "@" not in line:
            versions[canonical(m[1])] = m[2]
        else:
            other.append(line)
    return versions, other


def freeze(python: str | Path = sys.executable) -> str:
    """``pip freeze --all`` of the environment of ``python`` (``--all`` also lists pip,
    setuptools and wheel)."""
    out = subprocess.run(
        [str(python), "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{python} -m pip freeze failed: {out.stderr.strip()}")
    return out.stdout


def freeze_problems(
    freeze_text: str,
    pins: Mapping[str, Pin],
    lock_name: str,
    editables: Sequence[str] = ("moecl-lib",),
) -> list[str]:
    """Differences between a ``pip freeze --all`` output and a lock: exact versions,
    nothing missing or extra.

    The only lines allowed besides ``name==version`` are the editable installs of
    ``editables``.
    """
    from_freeze, other = parse_freeze(freeze_text)
    problems = []
    for name in sorted(set(pins) | set(from_freeze)):
        if name not in from_freeze:
            problems.append(
                f"{name}=={pins[name].version}: in {lock_name} but not installed"
            )
        elif name not in pins:
            problems.append(
                f"{name}=={from_freeze[name]}: installed but not in {lock_name}"
            )
        elif from_freeze[name] != pins[name].version:
            problems.append(
                f"{name}: installed {from_freeze[name]}, {lock_name} pins "
                f"{pins[name].version}"
            )
    allowed = {canonical(e) for e in editables}
    for line in other:
        if line.startswith("-e ") and _editable_name(line[3:].strip()) in allowed:
            continue
        problems.append(f"not from the lock: {line}")
    return problems


def _editable_name(target: str) -> str | None:
    """The project behind a ``pip freeze`` editable line: ``...#egg=NAME``, or a path to
    this repository."""
    m = re.search(r"#egg=([A-Za-z0-9._-]+)", target)
    if m:
        return canonical(m[1])
    path = _local_path(target)
    if path is not None and path.exists() and path.resolve() == ROOT:
        return "moecl-lib"
    return None


def venv_problems(python: str | Path, lock: Path | str = DEV_LOCK) -> list[str]:
    return freeze_problems(freeze(python), read_lock(lock), Path(lock).name)


# --------------------------------------------------------------- where wheels come from


def pip_config(
    python: str | Path = sys.executable, fallback: str | Path | None = None
) -> dict[str, list[str]]:
    """index-url / extra-index-url / find-links as ``pip config list`` shows them
    (environment variables first, then the ``install`` and ``global`` sections), each
    split into its URLs or paths. Asks the pip of ``python``, or of ``fallback`` where
    ``python`` has none (a venv created without pip, before the lock brings it)."""
    out = None
    for py in (python, fallback):
        if py is None:
            continue
        out = subprocess.run(
            [str(py), "-m", "pip", "config", "list"],
            capture_output=True,
            text=True,
            check=False,
        )
        if out.returncode == 0:
            break
    if out is None or out.returncode != 0:
        return {}
    found: dict[str, dict[str, str]] = {}
    for line in out.stdout.splitlines():
        m = re.match(r"^([^.=]*)\.([a-z-]+)='(.*)'$", line.strip())
        if m:
            found.setdefault(m[2], {})[m[1]] = m[3]
    config: dict[str, list[str]] = {}
    for key in ("index-url", "extra-index-url", "find-links"):
        by_section = found.get(key, {})
        for section in (":env:", "install", "global"):
            if section in by_section:
                config[key] = by_section[section].split()
                break
    return config


def _local_path(location: str) -> Path | None:
    if location.startswith("file://"):
        return Path(location[len("file://") :])
    if "://" not in location:
        return Path(location)
    return None


def _torch_pin(lock: Path | None) -> str | None:
    if lock is not None and lock.is_file():
        pin = read_lock(lock).get("torch")
        if pin is not None:
            return pin.version
    for text in requirements(_pyproject(), ["dev"]):
        m = re.match(r"^\s*torch\s*==\s*([^\s;,]+)", text)
        if m:
            return m[1]
    return None


def _provides_torch(location: str, version: str) -> bool:
    """Whether a local find-links folder or local simple index holds a CPU torch wheel
    of ``version``."""
    path = _local_path(location)
    if path is None:
        return False
    wanted = version if "+" in version else f"{version}+cpu"
    name = f"torch-{wanted}-"
    if path.is_dir() and any(p.name.startswith(name) for p in path.glob("torch-*.whl")):
        return True
    page = path / "torch" / "index.html"
    return page.is_file() and name in page.read_text(encoding="utf-8", errors="replace")


def source_args(
    installer: str,
    lock: Path | None,
    python: str | Path = sys.executable,
    compile_: bool = False,
    pip_python: str | Path | None = None,
) -> list[str]:
    """Index arguments that give ``installer`` the sources pip is configured with on
    this machine.

    uv does not read pip.conf: the index URL, extra index URLs and find-links of
    ``pip config`` are passed to it explicitly, those that name a local folder only when
    that folder exists. pip reads its configuration itself, so it gets nothing from here
    but the torch index. For ``make lock`` (``compile_``) PyPI is searched first, so
    that the hashes written into the lock are PyPI's (a local copy of a wheel is the
    same file: the install verifies that). Where no configured source provides the
    locked CPU build of torch, PyTorch's CPU index is added: PyPI has only the CUDA
    build of ``torch`` for Linux, and the lock pins ``+cpu``.
    """
    config = pip_config(python, pip_python)
    args: list[str] = []
    index_url = (config.get("index-url") or [PYPI_SIMPLE])[0]
    find_links = [
        f
        for f in config.get("find-links", [])
        if _local_path(f) is None or _local_path(f).exists()
    ]
    extras = [
        u
        for u in config.get("extra-index-url", [])
        if _local_path(u) is None or _local_path(u).exists()
    ]
    if installer == "uv":
        if compile_:
            args += ["--extra-index-url", index_url]
        elif index_url != PYPI_SIMPLE:
            args += ["--index-url", index_url]
        for f in find_links:
            args += ["--find-links", f]
        for u in extras:
            if not (compile_ and u == index_url):
                args += ["--extra-index-url", u]
    version = _torch_pin(lock)
    if (
        version is not None
        and not any(_provides_torch(s, version) for s in find_links + extras)
        and not any("download.pytorch.org" in u for u in extras + [index_url])
    ):
        args += ["--extra-index-url", TORCH_CPU_INDEX]
    return args


# ------------------------------------------------------------------------- command line


def _report(problems: Sequence[str], ok: str, fix: str) -> int:
    if problems:
        print("\n".join(f"  {p}" for p in problems[:40]), file=sys.stderr)
        if len(problems) > 40:
            print(f"  ... and {len(problems) - 40} more", file=sys.stderr)
        print(fix, file=sys.stderr)
        return 1
    print(ok)
    return 0


def _parser() -> argparse.ArgumentParser:
    """The command line of this script (one subcommand per check)."""
    ap = argparse.ArgumentParser(
        prog="lockfile.py", description=__doc__.split("\n\n")[0]
    )
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "check-venv",
        help="pip freeze --all of the venv equals the lock (exact versions)",
    )
    p.add_argument("lock", type=Path, nargs="?", default=DEV_LOCK)
    p.add_argument("--python", default=sys.executable)
    p.add_argument(
        "--editable",
        action="append",
        default=None,
        help="allowed editable install (default moecl-lib)",
    )
    sub.add_parser(
        "check-pyproject",
        help="every pyproject.toml requirement has a pin that satisfies it",
    )
    p = sub.add_parser(
        "check-python",
        help="the interpreter is the locks' target (CPython 3.11, Linux x86-64)",
    )
    p.add_argument("--python", default=sys.executable)
    p = sub.add_parser(
        "sources", help="index arguments for uv or pip (from pip's configuration)"
    )
    p.add_argument("lock", type=Path, nargs="?", default=None)
    p.add_argument("--installer", choices=["uv", "pip"], default="uv")
    p.add_argument(
        "--compile",
        action="store_true",
        help="for `uv pip compile` (PyPI searched first)",
    )
    p.add_argument(
        "--pip-python",
        default=None,
        help="whose pip to ask where this interpreter has no pip",
    )
    p = sub.add_parser(
        "extra-requirements",
        help="print the requirements of one extra of pyproject.toml",
    )
    p.add_argument("extra")
    p = sub.add_parser("hash", help="sha256 of a lock file")
    p.add_argument("lock", type=Path, nargs="?", default=DEV_LOCK)
    return ap


def _check_python(python: str) -> int:
    """0 when ``python`` is the locks' target interpreter, else 1 with the fix."""
    code = (
        "import sys, platform; print(sys.implementation.name, '%d.%d' % "
        "sys.version_info[:2], sys.platform, platform.machine())"
    )
    out = subprocess.run(
        [python, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    want = ["cpython", TARGET_PYTHON, "linux", "x86_64"]
    if out != want:
        print(
            f"the locks are for CPython {TARGET_PYTHON} on Linux x86-64, but "
            f"{python} is {' '.join(out)}: use PYTHON=python{TARGET_PYTHON} "
            "(or `pip install -e '.[dev]'` for an unlocked environment)",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand (see the module docstring); returns the exit status."""
    args = _parser().parse_args(argv)

    if args.cmd == "check-venv":
        pins = read_lock(args.lock)
        problems = freeze_problems(
            freeze(args.python), pins, args.lock.name, args.editable or ("moecl-lib",)
        )
        return _report(
            problems,
            f"pip freeze == {args.lock.as_posix()}: {len(pins)} packages at their "
            f"locked versions (lock sha256 {lock_hash(args.lock)[:16]}...)",
            f"the environment of {args.python} differs from {args.lock}: `make "
            "distclean setup` reinstalls it from the lock",
        )
    if args.cmd == "check-pyproject":
        return _report(
            pyproject_problems(),
            f"pyproject.toml agrees with {DEV_LOCK.name} and {LAB_LOCK.name}",
            "pyproject.toml and the lock disagree: run `make lock`",
        )
    if args.cmd == "check-python":
        return _check_python(args.python)
    if args.cmd == "sources":
        print(
            " ".join(
                source_args(
                    args.installer,
                    args.lock,
                    compile_=args.compile,
                    pip_python=args.pip_python,
                )
            )
        )
        return 0
    if args.cmd == "extra-requirements":
        print("\n".join(requirements(_pyproject(), [args.extra], base=False)))
        return 0
    if args.cmd == "hash":
        print(lock_hash(args.lock))
        return 0
    return 2  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
