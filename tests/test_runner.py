"""Tests of the notebook runner and the ``moecl`` CLI (moecl_lib.tools.runner,
moecl_lib.tools.cli).

Pure parts (profiles, stem selection, parameter-cell inspection, failure formatting, toc
checks) are tested directly; one end-to-end test runs two tiny notebooks through
papermill (one passes, one fails).
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from moecl_lib.tools import book_build, cell_failures, cli, notebook_profiles, runner
from moecl_lib.tools.runner import RunnerError

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _nb(cells: list[tuple[str, str, list[str]]]) -> dict:
    """Minimal nbformat-4 notebook from (cell_type, source, tags) triples."""
    out = []
    for i, (kind, src, tags) in enumerate(cells):
        cell = {
            "id": f"cell-{i}",
            "cell_type": kind,
            "metadata": {"tags": tags} if tags else {},
            "source": src,
        }
        if kind == "code":
            cell.update(outputs=[], execution_count=None)
        out.append(cell)
    return {
        "cells": out,
        "metadata": {
            "kernelspec": {
                "name": "python3",
                "display_name": "Python 3",
                "language": "python",
            },
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _repo(tmp_path: Path, notebooks: dict[str, dict], profiles: str = "") -> Path:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    for stem, nb in notebooks.items():
        (nbdir / f"{stem}.ipynb").write_text(json.dumps(nb))
    (nbdir / "profiles.yml").write_text(profiles)
    return tmp_path


# --------------------------------------------------------------------------------------
# profiles
# --------------------------------------------------------------------------------------


def test_parse_profiles_empty_and_comment_only():
    assert notebook_profiles.parse_profiles("") == {}
    assert notebook_profiles.parse_profiles("# only a comment\n") == {}


def test_parse_profiles_valid_and_empty_entries():
    text = "a:\n  paper:\n    n_runs: 200\n    T: 50\nb:\nc:\n  paper:\n"
    assert notebook_profiles.parse_profiles(text) == {
        "a": {"paper": {"n_runs": 200, "T": 50}},
        "b": {},
        "c": {"paper": {}},
    }


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("- a\n- b\n", "top level must be a mapping"),
        ("a: 3\n", "entry 'a' must be a mapping"),
        ("a:\n  paper: [1, 2]\n", "'a.paper' must be a mapping"),
        ("a:\n  quick:\n    n: 1\n", "'quick' profile cannot be overridden"),
        ("a:\n  paper:\n    not-a-name: 1\n", "not a Python identifier"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_parse_profiles_rejects_bad_structure(text, fragment):
    with pytest.raises(
        RunnerError, match=fragment.replace("[", r"\[").replace(".", r"\.")
    ):
        notebook_profiles.parse_profiles(text)


def test_load_profiles_missing_file_means_no_overrides(tmp_path):
    assert notebook_profiles.load_profiles(tmp_path / "nope.yml") == {}


def test_known_profiles_and_unknown_profile_error():
    profiles = {"a": {"paper": {"n": 1}, "huge": {"n": 9}}}
    assert notebook_profiles.known_profiles(profiles) == ["quick", "paper", "huge"]
    notebook_profiles.check_profile("huge", profiles)
    with pytest.raises(
        RunnerError, match=r"unknown profile 'papr'; known profiles: quick, paper, huge"
    ):
        notebook_profiles.check_profile("papr", profiles)


def test_resolve_parameters_merging_order():
    profiles = {"a": {"paper": {"n_runs": 200, "T": 50}}}
    assert notebook_profiles.resolve_parameters("a", "quick", profiles) == {}
    assert notebook_profiles.resolve_parameters("a", "paper", profiles) == {
        "n_runs": 200,
        "T": 50,
    }
    assert (
        notebook_profiles.resolve_parameters("b", "paper", profiles) == {}
    )  # no entry: stored parameters
    # command-line extras are applied last and win, in every profile
    assert notebook_profiles.resolve_parameters("a", "paper", profiles, {"T": 7}) == {
        "n_runs": 200,
        "T": 7,
    }
    assert notebook_profiles.resolve_parameters("a", "quick", profiles, {"T": 7}) == {
        "T": 7
    }
    with pytest.raises(RunnerError, match="unknown profile"):
        notebook_profiles.resolve_parameters("a", "nope", profiles)


def test_resolve_parameters_does_not_mutate_profiles():
    profiles = {"a": {"paper": {"T": 50}}}
    notebook_profiles.resolve_parameters("a", "paper", profiles, {"T": 1, "x": 2})
    assert profiles == {"a": {"paper": {"T": 50}}}


# --------------------------------------------------------------------------------------
# parameters cell and stems
# --------------------------------------------------------------------------------------


def test_parameter_names_from_tagged_cell():
    nb = _nb(
        [
            ("markdown", "# title", []),
            ("code", "import math", []),
            (
                "code",
                "n_runs = 20\nT: int = 50\na, b = 1, 2\n# comment\nseeds = "
                "list(range(3))",
                ["parameters"],
            ),
            (
                "code",
                "late = 1",
                ["parameters"],
            ),  # only the first tagged cell counts (as in papermill)
        ]
    )
    assert notebook_profiles.parameter_names(nb) == ["n_runs", "T", "a", "b", "seeds"]


def test_parameter_names_absent_and_broken():
    assert notebook_profiles.parameter_names(_nb([("code", "x = 1", [])])) is None
    with pytest.raises(RunnerError, match="parameters cell does not parse"):
        notebook_profiles.parameter_names(_nb([("code", "x = (", ["parameters"])]))


def test_check_overrides_catches_typos():
    notebook_profiles.check_overrides(
        "a", {}, None
    )  # nothing to inject: fine even without a parameters cell
    notebook_profiles.check_overrides("a", {"T": 1}, ["T", "n_runs"])
    with pytest.raises(
        RunnerError,
        match=r"a: unknown parameter\(s\) n_run; the parameters cell defines: "
        r"T, n_runs",
    ):
        notebook_profiles.check_overrides("a", {"n_run": 1}, ["T", "n_runs"])
    with pytest.raises(RunnerError, match="no cell tagged 'parameters'"):
        notebook_profiles.check_overrides("a", {"T": 1}, None)


def test_select_stems():
    avail = ["prop4_single_expert", "fig2", "prop1"]
    assert notebook_profiles.select_stems(avail, None) == [
        "fig2",
        "prop1",
        "prop4_single_expert",
    ]
    assert notebook_profiles.select_stems(
        avail, ["prop1", "notebooks/fig2.ipynb", "prop1"]
    ) == [
        "fig2",
        "prop1",
    ]
    with pytest.raises(
        RunnerError,
        match="unknown notebook 'prop9'; available stems: fig2, prop1, "
        "prop4_single_expert",
    ):
        notebook_profiles.select_stems(avail, ["prop9"])
    with pytest.raises(RunnerError, match="no notebooks found"):
        notebook_profiles.select_stems([], None)


def test_discover_notebooks_sorted_and_ignores_hidden(tmp_path):
    for name in ["b.ipynb", "a.ipynb", ".hidden.ipynb", "notes.md"]:
        (tmp_path / name).write_text("{}")
    assert list(notebook_profiles.discover_notebooks(tmp_path)) == ["a", "b"]
    with pytest.raises(RunnerError, match="does not exist"):
        notebook_profiles.discover_notebooks(tmp_path / "missing")


def test_stale_profile_entries():
    assert notebook_profiles.stale_profile_entries({"a": {}, "zz": {}}, ["a", "b"]) == [
        "zz"
    ]


def test_parse_cli_value():
    assert notebook_profiles.parse_cli_value("2000") == 2000
    assert notebook_profiles.parse_cli_value("0.5") == 0.5
    assert notebook_profiles.parse_cli_value("true") is True
    assert notebook_profiles.parse_cli_value("[1, 2]") == [1, 2]
    assert notebook_profiles.parse_cli_value("gap") == "gap"
    assert notebook_profiles.parse_cli_value("a: [") == "a: ["


# --------------------------------------------------------------------------------------
# failure reports
# --------------------------------------------------------------------------------------

_TB = [
    "\x1b[0;31m"
    "---------------------------------------------------------------------------"
    "\x1b[0m",
    "\x1b[0;31mAssertionError\x1b[0m                            Traceback (most recent "
    "call last)",
    "Cell \x1b[0;32mIn[4], line 3\x1b[0m\n\x1b[1;32m      1\x1b[0m g = 1.0\n----> 3 "
    "assert g < 0.5, 'G_t off'",
    "\x1b[0;31mAssertionError\x1b[0m: G_t off",
]


def test_format_failure_is_short_and_names_cell_and_exception():
    input_nb = _nb(
        [
            ("markdown", "# t", []),
            ("code", "n = 1", ["parameters"]),
            ("code", "\n\ng = 1.0\n\nassert g < 0.5, 'G_t off'", []),
        ]
    )
    # papermill's index counts its injected-parameters cell: 3 in the executed notebook,
    # 2 in the input
    exc = SimpleNamespace(
        cell_index=3,
        source="\n\ng = 1.0\n\nassert g < 0.5, 'G_t off'",
        ename="AssertionError",
        evalue="G_t off",
        traceback=_TB,
    )
    failure = cell_failures.failure_from_exception(exc, input_nb)
    assert failure.cell_index == 2
    assert failure.line_in_cell == 3
    msg = cell_failures.format_failure(
        "prop4_single_expert", failure, Path("book/generated/prop4_single_expert.ipynb")
    )
    lines = msg.splitlines()
    assert lines[0] == "FAILED prop4_single_expert: cell 2 `g = 1.0` (line 3)"
    assert lines[1] == "  AssertionError: G_t off"
    assert lines[2] == "  full traceback: book/generated/prop4_single_expert.ipynb"
    assert len(lines) == 3 and "\x1b" not in msg


def test_format_failure_real_papermill_exception_and_long_messages():
    from papermill.exceptions import PapermillExecutionError

    exc = PapermillExecutionError(
        cell_index=5,
        exec_count=5,
        source="x = f()",
        ename="ValueError",
        evalue="first line\nsecond line",
        traceback=[],
    )
    msg = cell_failures.format_failure("nb", cell_failures.failure_from_exception(exc))
    assert msg.splitlines() == [
        "FAILED nb: cell 5 `x = f()`",
        "  ValueError: first line [...]",
    ]
    long = cell_failures.CellFailure(1, "y = 2", "RuntimeError", "z" * 1000)
    assert len(cell_failures.format_failure("nb", long).splitlines()[1]) <= 302


def test_format_failure_without_cell():
    failure = cell_failures.failure_from_exception(
        RuntimeError("Kernel died before replying\nmore")
    )
    msg = cell_failures.format_failure("nb", failure)
    assert msg.splitlines() == [
        "FAILED nb: during execution (no cell)",
        "  RuntimeError: more",
    ]


def test_first_code_line():
    assert cell_failures.first_code_line("\n  \n  x = 1  \ny") == "x = 1"
    assert cell_failures.first_code_line("") == "(empty cell)"
    assert cell_failures.first_code_line("a" * 200).endswith("...")


def test_summary_table_lists_every_notebook_and_total():
    res = [
        runner.NotebookResult("prop1", "paper", {}, Path("x"), 1.5, True),
        runner.NotebookResult(
            "fig2_long_name", "paper", {}, Path("y"), 3.0, False, "FAILED ..."
        ),
    ]
    table = runner.summary_table(res)
    assert "prop1" in table and "fig2_long_name" in table
    rows = table.splitlines()
    assert rows[2].split() == ["prop1", "paper", "ok", "1.5"]
    assert rows[3].split() == ["fig2_long_name", "paper", "FAILED", "3.0"]
    assert rows[-1].startswith("total (2 run, 1 failed)") and rows[-1].endswith("4.5")
    assert (
        runner.summary_table(res, elapsed=3.25, jobs=1) == table
    )  # sequential: the sum is the elapsed time
    last = runner.summary_table(res, elapsed=3.25, jobs=2).splitlines()[-1]
    assert last.startswith("elapsed (2 at once)") and last.endswith("3.2")


# --------------------------------------------------------------------------------------
# book checks
# --------------------------------------------------------------------------------------


def test_toc_files_walks_parts_chapters_sections():
    toc = {
        "format": "jb-book",
        "root": "intro",
        "parts": [
            {
                "caption": "A",
                "chapters": [
                    {"file": "setting"},
                    {"file": "generated/p4", "sections": [{"file": "s1"}]},
                ],
            },
        ],
    }
    assert book_build.toc_files(toc) == ["intro", "setting", "generated/p4", "s1"]


def test_check_book_inputs_errors(tmp_path):
    root = _repo(tmp_path, {"p4": _nb([("code", "x = 1", [])])})
    book = root / "book"
    book.mkdir()
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: generated/p4\n  - file: "
        "generated/p9\n"
    )
    with pytest.raises(RunnerError, match="book/generated/ does not exist"):
        book_build.check_book_inputs(root)
    (book / "generated").mkdir()
    with pytest.raises(
        RunnerError, match="lists generated/p9 but notebooks/p9.ipynb does not exist"
    ):
        book_build.check_book_inputs(root)
    (book / "_toc.yml").write_text(
        "format: jb-book\nroot: intro\nchapters:\n  - file: generated/p4\n"
    )
    with pytest.raises(
        RunnerError, match="lacks p4.ipynb .*moecl notebooks --profile paper --only p4"
    ):
        book_build.check_book_inputs(root)
    (book / "generated" / "p4.ipynb").write_text("{}")
    with pytest.raises(RunnerError, match="MathJax"):
        book_build.check_book_inputs(root)
    npm = root / book_build.MATHJAX_NPM
    npm.parent.mkdir(parents=True)
    npm.write_text("// mathjax")
    book_build.check_book_inputs(root)  # copies MathJax from node_modules
    assert (root / book_build.MATHJAX_FILE).read_text() == "// mathjax"


def test_book_command_is_strict():
    cmd = book_build.book_command(Path("/repo"))
    assert cmd[1:5] == ["build", "-W", "-n", "--keep-going"] and cmd[-1] == "/repo/book"


# --------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------


def test_cli_registry_has_builtin_commands_and_refuses_duplicates():
    parser = cli.build_parser()
    assert {"notebooks", "book"} <= set(cli.REGISTRY)
    assert parser.parse_args(
        ["notebooks", "--profile", "paper", "--only", "a", "b"]
    ).only == ["a", "b"]
    with pytest.raises(ValueError, match="registered twice"):
        cli.register("notebooks", help="again")(lambda args: 0)


def test_cli_user_errors_are_one_line_exit_2(tmp_path, capsys):
    root = _repo(
        tmp_path,
        {"a": _nb([("code", "x = 1", ["parameters"])])},
        "a:\n  paper:\n    y: 2\n",
    )
    assert cli.main(["notebooks", "--profile", "papr", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "moecl notebooks: error: unknown profile 'papr'; known profiles: quick, paper"
    )
    assert cli.main(["notebooks", "--only", "zz", "--root", str(root)]) == 2
    assert "unknown notebook 'zz'; available stems: a" in capsys.readouterr().err
    assert (
        cli.main(["notebooks", "--profile", "paper", "--root", str(root)]) == 2
    )  # y is not a parameter
    assert (
        "a: unknown parameter(s) y; the parameters cell defines: x"
        in capsys.readouterr().err
    )
    assert cli.main(["book", "--root", str(root)]) == 2
    assert (
        "book/generated/ does not exist; execute the notebooks first"
        in capsys.readouterr().err
    )


# --------------------------------------------------------------------------------------
# end to end (two kernel starts)
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("jobs", [1, 2])
def test_run_notebooks_end_to_end_inplace(tmp_path, jobs, monkeypatch):
    # papermill changes the working directory of its process around each notebook: the
    # runner runs parallel notebooks in processes, so this process's cwd must not move
    # (checked below; monkeypatch restores it for later tests even if it did).
    before = Path.cwd()
    monkeypatch.chdir(before)
    ok_nb = _nb(
        [
            ("code", "x = 1", ["parameters"]),
            ("code", "import os\nprint(f'x={x} cwd={os.getcwd()}')", []),
        ]
    )
    bad_nb = _nb(
        [
            ("markdown", "# fails under the paper profile", []),
            ("code", "x = 1", ["parameters"]),
            ("code", "y = x * 10\nassert y == 10, f'y drifted to {y}'", []),
        ]
    )
    root = _repo(
        tmp_path,
        {"a_ok": ok_nb, "b_bad": bad_nb},
        "a_ok:\n  paper:\n    x: 3\nb_bad:\n  paper:\n    x: 2\n",
    )
    stored_bad = (root / "notebooks" / "b_bad.ipynb").read_text()
    lines: list[str] = []

    class _Sink:
        def write(self, s: str) -> None:
            lines.append(s)

        def flush(self) -> None:
            pass

    results = runner.run_notebooks(
        root, "paper", inplace=True, stream=_Sink(), jobs=jobs
    )
    out = "".join(lines)
    assert Path.cwd() == before
    assert [(r.stem, r.ok) for r in results] == [("a_ok", True), ("b_bad", False)]

    # the passing notebook was refreshed in place, with the override injected and cwd =
    # repo root
    done = json.loads((root / "notebooks" / "a_ok.ipynb").read_text())
    printed = "".join(
        "".join(o.get("text", "")) for c in done["cells"] for o in c.get("outputs", [])
    )
    assert f"x=3 cwd={root}" in printed
    assert all(
        "papermill" not in c.get("metadata", {}) for c in done["cells"]
    )  # volatile timings stripped

    # the failing notebook is left untouched, and the report is short and precise
    assert (root / "notebooks" / "b_bad.ipynb").read_text() == stored_bad
    assert "FAILED b_bad: cell 2 `y = x * 10` (line 2)" in out
    assert "AssertionError: y drifted to 20" in out
    assert "Traceback" not in out
    assert "total (2 run, 1 failed)" in out


def test_run_notebooks_rejects_bad_jobs(tmp_path):
    root = _repo(tmp_path, {"a": _nb([("code", "x = 1", ["parameters"])])}, "")
    with pytest.raises(runner.RunnerError, match="jobs=0"):
        runner.run_notebooks(root, "quick", jobs=0)


def test_record_profile_and_generated_profiles(tmp_path):
    gen = tmp_path / "book" / "generated"
    gen.mkdir(parents=True)
    (gen / "a.ipynb").write_text(json.dumps(_nb([("code", "x = 1", [])])))
    (gen / "b.ipynb").write_text(json.dumps(_nb([("code", "x = 1", [])])))
    runner.record_profile(gen / "a.ipynb", "paper", {"n_runs": 5})
    assert runner.generated_profiles(tmp_path) == {"a": "paper", "b": "?"}
    meta = json.loads((gen / "a.ipynb").read_text())["metadata"]["moecl"]
    assert meta == {"profile": "paper", "overrides": {"n_runs": 5}}


def test_the_repository_profiles_name_only_parameters_of_their_notebooks():
    """Every paper-profile override in notebooks/profiles.yml is a variable of the
    notebook's parameters cell (the check `moecl notebooks` makes before running)."""
    root = Path(__file__).resolve().parents[1]
    profiles = notebook_profiles.load_profiles(root / "notebooks" / "profiles.yml")
    notebooks = notebook_profiles.discover_notebooks(root / "notebooks")
    assert set(profiles) <= set(notebooks)
    for stem, path in notebooks.items():
        params = notebook_profiles.resolve_parameters(stem, "paper", profiles, {})
        names = notebook_profiles.parameter_names(
            notebook_profiles.read_notebook_json(path)
        )
        notebook_profiles.check_overrides(stem, params, names)
