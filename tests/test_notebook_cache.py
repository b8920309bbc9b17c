"""The chapter cache: what its key covers, what it ignores, and the reuse round trip
(store -> lookup -> restore, through the runner with real kernels)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from moecl_lib.paths import RunnerError
from moecl_lib.tools import notebook_cache as nc
from moecl_lib.tools import runner
from moecl_lib.tools.notebook_profiles import stored_parameter


def _nb(param_src: str, body: str, outputs: list | None = None) -> dict:
    cells = [
        {
            "id": "parameters",
            "cell_type": "code",
            "metadata": {"tags": ["parameters"]},
            "source": param_src,
            "outputs": [],
            "execution_count": None,
        },
        {
            "id": "body",
            "cell_type": "code",
            "metadata": {},
            "source": body,
            "outputs": outputs or [],
            "execution_count": None,
        },
    ]
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


BODY = (
    "from pathlib import Path\n"
    "Path(out_dir).mkdir(parents=True, exist_ok=True)\n"
    "(Path(out_dir) / 'value.csv').write_text(f'x,{x}\\n')\n"
    "print('x =', x)"
)


def _repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "notebooks" / "expected").mkdir(parents=True)
    (root / "moecl_lib").mkdir()
    (root / "grids").mkdir()
    (root / "lock").mkdir()
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    (root / "lock" / "dev.txt").write_text("numpy==2.0\n")
    (root / "moecl_lib" / "engine.py").write_text("RULE = 1\n")
    nb = _nb("x = 1\nout_dir = 'results/ch'", BODY)
    (root / "notebooks" / "ch.ipynb").write_text(json.dumps(nb))
    (root / "notebooks" / "profiles.yml").write_text("ch:\n  paper:\n    x: 3\n")
    return root


def _key(root: Path, params: dict | None = None, profile: str = "paper") -> str:
    shared = nc.shared_parts(root)
    nb = json.loads((root / "notebooks" / "ch.ipynb").read_text())
    return nc.chapter_key(root, "ch", nb, profile, params or {"x": 3}, shared).digest


def test_key_changes_with_every_input(tmp_path, monkeypatch):
    root = _repo(tmp_path)
    base = _key(root)
    assert _key(root) == base  # deterministic
    assert _key(root, {"x": 4}) != base
    assert _key(root, profile="quick") != base

    def changed(path: Path, text: str) -> str:
        old = path.read_text()
        path.write_text(text)
        try:
            return _key(root)
        finally:
            path.write_text(old)

    assert changed(root / "moecl_lib" / "engine.py", "RULE = 2\n") != base
    tools = root / "moecl_lib" / "tools"
    tools.mkdir()
    (tools / "glance.py").write_text("A = 1\n")  # tooling that reads results only
    assert _key(root) == base
    (tools / "runner.py").write_text("A = 1\n")  # writes the executed notebooks
    assert _key(root) != base
    (tools / "runner.py").unlink()
    assert changed(root / "lock" / "dev.txt", "numpy==2.1\n") != base
    assert changed(root / "pyproject.toml", "[project]\nname = 'y'\n") != base
    nb = json.loads((root / "notebooks" / "ch.ipynb").read_text())
    nb["cells"][1]["source"] = BODY + "\nprint('more')"
    assert changed(root / "notebooks" / "ch.ipynb", json.dumps(nb)) != base
    (root / "notebooks" / "expected" / "ch.json").write_text("{}")
    assert _key(root) != base
    (root / "notebooks" / "expected" / "ch.json").unlink()
    (root / "grids" / "g.yml").write_text("name: g\n")
    assert _key(root) != base
    (root / "grids" / "g.yml").unlink()
    assert _key(root) == base
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "default")
    assert _key(root) != base  # a kernel-selecting variable is part of the machine


def test_no_chapter_imports_the_tooling():
    """The key leaves moecl_lib/tools out (except the runner modules): sound only while
    no chapter, and no library module a chapter imports, imports the tooling."""
    import ast

    repo = Path(__file__).resolve().parents[1]
    sources = {
        p: p.read_text(encoding="utf-8")
        for p in (repo / "moecl_lib").rglob("*.py")
        if "tools" not in p.relative_to(repo / "moecl_lib").parts
    }
    for nb_path in (repo / "notebooks").glob("*.ipynb"):
        nb = json.loads(nb_path.read_text(encoding="utf-8"))
        code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
        sources[nb_path] = "\n".join(
            line for line in "\n".join(code).splitlines() if not line.startswith("%")
        )
    offenders = []
    for path, text in sources.items():
        for node in ast.walk(ast.parse(text)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(
                n == "moecl_lib.tools" or n.startswith("moecl_lib.tools.")
                for n in names
            ):
                offenders.append(path.name)
    assert offenders == []


def test_key_covers_files_and_folders_that_parameters_name(tmp_path):
    root = _repo(tmp_path)
    (root / "grids" / "fine.yml").write_text("name: fine\n")
    data = root / "idx"
    data.mkdir()
    (data / "train.gz").write_bytes(b"0123")
    params = {"x": 3, "grid": "grids/fine.yml", "data_dir": str(data)}
    base = _key(root, params)
    (root / "grids" / "fine.yml").write_text("name: finer\n")
    assert _key(root, params) != base  # the grid file the chapter runs
    after_grid = _key(root, params)
    (data / "test.gz").write_bytes(b"45")
    assert _key(root, params) != after_grid  # a file more in the data folder
    # the result folder is written by the chapter: what it holds is not an input
    out = {**params, "out_dir": "results/ch"}
    before = _key(root, out)
    (root / "results" / "ch").mkdir(parents=True)
    (root / "results" / "ch" / "value.csv").write_text("x,3\n")
    assert _key(root, out) == before
    shared = nc.shared_parts(root)
    nb = json.loads((root / "notebooks" / "ch.ipynb").read_text())

    def named(extra: dict) -> str:
        key = nc.chapter_key(root, "ch", nb, "paper", {**out, **extra}, shared)
        return key.parts["named_files"]

    assert named({"where": "."}) == named({"where": ".."}) == named({})


def test_key_ignores_outputs_and_bytecode(tmp_path):
    root = _repo(tmp_path)
    base = _key(root)
    nb = json.loads((root / "notebooks" / "ch.ipynb").read_text())
    nb["cells"][1]["outputs"] = [{"output_type": "stream", "text": "x = 1\n"}]
    nb["cells"][1]["execution_count"] = 7
    (root / "notebooks" / "ch.ipynb").write_text(json.dumps(nb))
    cache = root / "moecl_lib" / "__pycache__"
    cache.mkdir()
    (cache / "engine.cpython-311.pyc").write_bytes(b"\x00")
    (root / "moecl_lib" / "kernel.run_block-1.py311.nbi").write_bytes(b"\x00")
    assert _key(root) == base


def test_result_folder_and_stored_parameter(tmp_path):
    root = _repo(tmp_path)
    nb = json.loads((root / "notebooks" / "ch.ipynb").read_text())
    assert stored_parameter(nb, "out_dir") == "results/ch"
    assert stored_parameter(nb, "missing") is None
    assert nc.result_folder(root, nb, {}) == (root / "results" / "ch").resolve()
    assert nc.result_folder(root, nb, {"out_dir": "results/other"}).name == "other"
    assert nc.result_folder(root, nb, {"out_dir": "../outside"}) is None
    assert nc.result_folder(root, nb, {"out_dir": "."}) is None


def test_check_mode():
    assert nc.check_mode("use") == "use"
    with pytest.raises(RunnerError, match="--cache 'yes' must be one of off, use"):
        nc.check_mode("yes")


def test_store_lookup_restore_round_trip(tmp_path):
    root = _repo(tmp_path)
    cache = tmp_path / "cache"
    nb = json.loads((root / "notebooks" / "ch.ipynb").read_text())
    shared = nc.shared_parts(root)
    key = nc.chapter_key(root, "ch", nb, "paper", {"x": 3}, shared)
    executed = tmp_path / "executed.ipynb"
    executed.write_text(json.dumps(_nb("x = 3", BODY)))
    results = root / "results" / "ch"
    results.mkdir(parents=True)
    (results / "value.csv").write_text("x,3\n")
    assert nc.lookup(cache, key) is None
    entry = nc.store(cache, key, executed, results, 12.34)
    assert nc.lookup(cache, key) == entry
    assert nc.changed_parts(cache, key) == []

    # a later build: stale outputs in the repository are replaced by the stored ones
    (results / "value.csv").write_text("x,999\n")
    (results / "stale.csv").write_text("old\n")
    out = tmp_path / "gen" / "ch.ipynb"
    meta = nc.restore(entry, out, results)
    assert meta["seconds"] == 12.3
    assert sorted(p.name for p in results.iterdir()) == ["value.csv"]
    assert (results / "value.csv").read_text() == "x,3\n"
    reused = json.loads(out.read_text())["metadata"]["moecl"][nc.REUSED_KEY]
    assert reused["key"] == key.digest and reused["seconds"] == 12.3

    # another key of the same chapter replaces the entry and names what changed
    other = nc.chapter_key(root, "ch", nb, "paper", {"x": 4}, shared)
    assert nc.changed_parts(cache, other) == ["parameters"]
    nc.store(cache, other, executed, results, 1.0)
    assert nc.lookup(cache, key) is None and nc.lookup(cache, other) is not None
    assert len(list((cache / "ch").iterdir())) == 1


def test_runner_reuses_an_unchanged_chapter_and_reruns_a_changed_one(
    tmp_path, monkeypatch
):
    root = _repo(tmp_path)
    monkeypatch.setenv(nc.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.chdir(root)

    def build(**kw) -> tuple[list[runner.NotebookResult], str]:
        sink = io.StringIO()
        res = runner.run_notebooks(root, "paper", stream=sink, **kw)
        return res, sink.getvalue()

    first, _ = build(cache="use")
    assert [(r.ok, r.reused) for r in first] == [(True, False)]
    csv = root / "results" / "ch" / "value.csv"
    assert csv.read_text() == "x,3\n"
    csv.write_text("tampered\n")

    second, out = build(cache="use")
    assert [(r.ok, r.reused) for r in second] == [(True, True)]
    assert "ch: reused" in out and "total (0 run, 1 reused, 0 failed)" in out
    assert csv.read_text() == "x,3\n"  # the stored result folder came back
    gen = json.loads((root / "book" / "generated" / "ch.ipynb").read_text())
    assert gen["metadata"]["moecl"]["profile"] == "paper"
    assert nc.REUSED_KEY in gen["metadata"]["moecl"]

    (root / "moecl_lib" / "engine.py").write_text("RULE = 2\n")
    third, out = build(cache="use")
    assert [(r.ok, r.reused) for r in third] == [(True, False)]
    assert "ch: runs again (library changed since its stored run)" in out

    off, _ = build(cache="off")
    assert [r.reused for r in off] == [False]
    gen = json.loads((root / "book" / "generated" / "ch.ipynb").read_text())
    assert nc.REUSED_KEY not in gen["metadata"]["moecl"]


def test_runner_runs_a_chapter_whose_stored_run_is_damaged(tmp_path, monkeypatch):
    root = _repo(tmp_path)
    monkeypatch.setenv(nc.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.chdir(root)
    sink = io.StringIO()
    runner.run_notebooks(root, "paper", stream=sink, cache="use")
    (entry,) = (tmp_path / "cache" / "ch").iterdir()
    (entry / "entry.json").write_text("{not json")
    again = runner.run_notebooks(root, "paper", stream=sink, cache="use")
    assert [(r.ok, r.reused) for r in again] == [(True, False)]
    (entry,) = (tmp_path / "cache" / "ch").iterdir()
    assert json.loads((entry / "entry.json").read_text())["stem"] == "ch"
