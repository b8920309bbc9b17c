"""Keep the set-up files in sync: pyproject.toml (single source of truth for the
requirements), lock/ (the exact versions; tests/test_lock.py), environment.yml (conda
wrapper around lock/dev.txt), package.json/package-lock.json (MathJax), the Makefile,
.ci/run and the nbval sanitizers."""

from __future__ import annotations

import json
import os
import re
import sys
import tomllib  # standard library: requires-python is >= 3.11, as the lock
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _reqs(items: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(s) for s in items]
    return {r.name.lower(): r for r in reqs}


def test_environment_yml_installs_the_lock():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert (
        "python=3.11" in deps
    )  # the lock's target (moecl_lib.tools.lockfile.TARGET_PYTHON)
    assert "pip" in deps
    pip_entries = [d["pip"] for d in deps if isinstance(d, dict) and "pip" in d]
    assert pip_entries == [
        ["--extra-index-url https://download.pytorch.org/whl/cpu", "-r lock/dev.txt"]
    ], (
        "environment.yml must install exactly lock/dev.txt (torch's CPU build from "
        "PyTorch's CPU index)"
    )
    # nothing else pinned in environment.yml: the lock (from pyproject.toml) is the
    # single source of versions
    extra = [
        d
        for d in deps
        if isinstance(d, str) and not re.match(r"^(python=3\.11|pip|nodejs)$", d)
    ]
    assert extra == []
    from moecl_lib.tools import lockfile

    assert lockfile.TARGET_PYTHON == "3.11"
    assert (ROOT / "lock" / "dev.txt").is_file()


def test_pyproject_pins():
    proj = _pyproject()["project"]
    base = _reqs(proj["dependencies"])
    assert str(base["torch"].specifier) == "==2.13.0", (
        "torch must be pinned exactly (unpinned pulls CUDA wheels)"
    )
    dev = _reqs(proj["optional-dependencies"]["dev"])
    jb = dev["jupyter-book"].specifier
    assert not jb.contains("2.0.0") and not jb.contains("2.1.7"), (
        "jupyter-book 2.x cannot build HTML offline"
    )
    assert any(jb.contains(v) for v in ("1.0.4.post1", "1.0.4")), (
        "jupyter-book 1.x must be allowed"
    )
    for tool in ("nbval", "papermill", "pytest"):
        assert tool in dev, f"{tool} missing from the [dev] extra"
    from packaging.specifiers import SpecifierSet

    assert SpecifierSet(proj["requires-python"]).contains("3.11")
    # the lock is for 3.11: an older Python is refused at install, not skipped here
    assert not SpecifierSet(proj["requires-python"]).contains("3.10")
    assert sys.version_info >= (3, 11)


def test_console_script_points_at_cli():
    scripts = _pyproject()["project"]["scripts"]
    assert scripts["moecl"] == "moecl_lib.tools.cli:main"
    from moecl_lib.tools.cli import main

    # the installed entry point is the declared one and loads that very function
    (ep,) = metadata.entry_points(group="console_scripts", name="moecl")
    assert ep.value == scripts["moecl"]
    assert ep.load() is main
    # and the command works: its help lists the subcommands
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0


def test_console_script_help_lists_commands(capsys: pytest.CaptureFixture) -> None:
    from moecl_lib.tools.cli import main

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("notebooks", "book", "bench", "portability"):
        assert command in out


def test_mathjax_pinned_and_locked():
    pkg = json.loads((ROOT / "package.json").read_text())
    assert pkg["dependencies"] == {"mathjax": "3.2.2"}
    lock = json.loads((ROOT / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == {"mathjax": "3.2.2"}
    assert lock["packages"]["node_modules/mathjax"]["version"] == "3.2.2"
    assert lock["packages"]["node_modules/mathjax"]["integrity"].startswith("sha512-")


def test_makefile_and_runner_agree_on_mathjax_location():
    from moecl_lib.tools import book_build

    make = (ROOT / "Makefile").read_text()
    assert f"MATHJAX := {book_build.MATHJAX_FILE.as_posix()}" in make
    assert f"MATHJAX_SRC := {book_build.MATHJAX_NPM.as_posix()}" in make
    cfg = yaml.safe_load((ROOT / "book" / "_config.yml").read_text())["sphinx"][
        "config"
    ]
    static = cfg["html_static_path"]
    # mathjax_path is relative to the output _static/, which receives the contents of
    # each html_static_path
    assert any(
        (Path("book") / s / cfg["mathjax_path"]) == book_build.MATHJAX_FILE
        for s in static
    )
    assert "_static" not in static, (
        "jupyter-book injects every *.js under book/_static into every page"
    )


def test_makefile_targets_and_pytest_exit_5():
    make = (ROOT / "Makefile").read_text()
    for target in ("setup:", "notebooks:", "book:", "test:", "clean:", "screenshot:"):
        assert re.search(rf"^{target}", make, re.M), f"Makefile lacks {target}"
    assert "$$rc -eq 5" in make, (
        "pytest exit status 5 (no tests collected) must fail explicitly"
    )
    assert "--nbval-lax --nbval-current-env" in make


def test_ci_script_runs_make_test():
    ci = ROOT / ".ci" / "run"
    text = ci.read_text()
    assert text.startswith("#!/usr/bin/env bash") and "set -euo pipefail" in text
    assert re.search(r"^make test$", text, re.M)
    assert os.access(ci, os.X_OK), ".ci/run must be executable"


def test_nbval_sanitizers_mask_wall_times_only():
    from nbval.plugin import get_sanitize_patterns

    pairs = get_sanitize_patterns(
        (ROOT / "notebooks" / "nbval_sanitize.cfg").read_text()
    )
    assert len(pairs) >= 2

    def clean(s: str) -> str:
        for regex, repl in pairs:
            s = re.sub(regex, repl, s)
        return s

    assert clean("simulation wall time: 21.78 s") == clean(
        "simulation wall time: 3.02 s"
    )
    assert clean("Wall_time = 4 s") == clean("Wall_time = 9 s")
    assert clean("<Figure at 0x7f3a2c1d5e50>") == clean("<Figure at 0x7f0000000000>")
    # a checked number must survive sanitising
    assert clean("mean G_t = 4.779, F_t = 1.430") == "mean G_t = 4.779, F_t = 1.430"
    assert clean("T = 300 rounds, 4000 runs") == "T = 300 rounds, 4000 runs"
