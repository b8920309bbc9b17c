"""The reproduction-status page, generated at build time from the records of the build's
own chapters.

``book/reproduction_status.csv`` (columns :data:`COLUMNS`) holds what does not depend on
a run: the claim id, its kind (``paper``: Li et al.; ``baseline``: the Expert Gate
paper; ``companion``: this companion's own findings), the claim text, its source, the
chapter that checks it and the rule in words. The verdicts and the evidence come from
the records glued into the executed notebooks in ``book/generated/``
(:mod:`moecl_lib.claims.record`): one verdict per setting, derived by the written rule
of :mod:`moecl_lib.claims.rule`. ``moecl book`` writes :data:`GENERATED` before every
build and then checks (:func:`unmatched_numbers`) that every number of the page's
evidence is printed by the chapter it comes from.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from moecl_lib.claims.record import Record, record_from_notebook
from moecl_lib.claims.rule import MARGIN, VERDICTS, reading_line
from moecl_lib.tools.claim_tables import claim_checks, table_cell

COLUMNS = ("id", "kind", "claim", "source", "chapter", "rule")
KINDS = {
    "paper": "Claims of the paper (Li et al., ICLR 2025)",
    "baseline": "Claims of the Expert Gate paper (Aljundi et al., CVPR 2017)",
    "companion": "Findings of this companion (not claims of either paper)",
}
PENDING = "pending"
GENERATED = Path("generated") / "_status_table.md"
"""Where the rendered page body is written, relative to ``book/``."""
GENERATED_NOTEBOOKS = Path("generated")


def load_status(path: str | Path) -> list[dict[str, str]]:
    """Rows of the status CSV; raises ``ValueError`` naming the line of a malformed row,
    an unknown kind or a duplicate id."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise ValueError(
                f"{path}: header must be {','.join(COLUMNS)}, got {reader.fieldnames}"
            )
        rows, seen = [], set()
        for line, row in enumerate(reader, start=2):
            if None in row or any(v is None for v in row.values()):
                raise ValueError(
                    f"{path}:{line}: expected {len(COLUMNS)} fields (quote fields "
                    "containing commas)"
                )
            if row["kind"] not in KINDS:
                raise ValueError(
                    f"{path}:{line}: kind {row['kind']!r} must be one of {list(KINDS)}"
                )
            if row["id"] in seen:
                raise ValueError(f"{path}:{line}: duplicate id {row['id']!r}")
            seen.add(row["id"])
            rows.append(row)
    return rows


def chapter_title(nb: Mapping[str, Any], fallback: str) -> str:
    """The first Markdown ``# `` heading of a notebook (its chapter title)."""
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", "")).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def _link(chapter: str, titles: Mapping[str, str]) -> str:
    target = (GENERATED_NOTEBOOKS / chapter).as_posix()
    return f"[{titles.get(chapter, chapter)}]({target}.ipynb)"


def render_status(
    rows: Sequence[dict[str, str]],
    records: Mapping[str, Record],
    titles: Mapping[str, str] | None = None,
    profiles: Mapping[str, str] | None = None,
) -> str:
    """Markdown body: provenance of the build, headline counts per kind and setting, the
    summary table and one details section per claim (in CSV order) with the readings of
    every setting."""
    titles = titles or {}
    profiles = profiles or {}
    lines = [_provenance(rows, records, profiles), ""]
    lines += _headline(rows, records) + [""]
    lines += [
        "| # | claim | calibrated setting | recalled setting | chapter's own "
        "parameters | chapter |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(rows, start=1):
        checks = claim_checks(r, records)
        by = {c.setting: f"**{c.verdict}**" for c in checks}
        cols = [by.get("calibrated", "—"), by.get("recalled", "—"), by.get("-", "—")]
        if not checks:
            cols = [f"**{PENDING}**"] * 3
        lines.append(
            f"| [{i}](status-{i}) | {table_cell(r['claim'])} | {' | '.join(cols)} "
            f"| {_link(r['chapter'], titles)} |"
        )
    lines += ["", "## Details", ""]
    for i, r in enumerate(rows, start=1):
        lines += [
            f"(status-{i})=",
            f"### {i}. {' '.join(r['claim'].split())}",
            "",
            f"- **Chapter:** {_link(r['chapter'], titles)}",
            f"- **Source:** {' '.join(r['source'].split())}",
            f"- **Rule:** {' '.join(r['rule'].split())}",
        ]
        checks = claim_checks(r, records)
        if not checks:
            lines.append(
                f"- **Verdict:** {PENDING} (the chapter's record is missing from this "
                "build)"
            )
        for c in checks:
            where = "" if c.setting == "-" else f" ({c.setting} setting)"
            lines.append(f"- **Verdict{where}:** {c.verdict}")
            lines += [f"  - {reading_line(rd)}" for rd in c.readings]
        lines.append("")
    return "\n".join(lines)


def _provenance(
    rows: Sequence[Mapping[str, str]],
    records: Mapping[str, Record],
    profiles: Mapping[str, str],
) -> str:
    used = [
        records[ch] for ch in dict.fromkeys(r["chapter"] for r in rows) if ch in records
    ]
    if not used:
        return "No chapter record was found in this build: every verdict is pending."
    profs = sorted({profiles.get(rec.chapter, "?") for rec in used})
    cpus = sorted({str(rec.machine.get("cpu", "?")) for rec in used})
    dates = sorted(rec.created[:10] for rec in used if rec.created)
    envs = sorted(
        {
            ", ".join(f"{k}={v}" for k, v in rec.machine.get("environment", {}).items())
            or "default"
            for rec in used
        }
    )
    span = (
        dates[0]
        if dates and dates[0] == dates[-1]
        else (f"{dates[0]} to {dates[-1]}" if dates else "?")
    )
    return (
        "This page was generated from the chapters of this build: profile "
        f"**{', '.join(profs)}**, run on {span}, CPU {'; '.join(cpus)}, kernel "
        f"settings {'; '.join(envs)}."
    )


def _headline(
    rows: Sequence[Mapping[str, str]], records: Mapping[str, Record]
) -> list[str]:
    out = []
    for kind, title in KINDS.items():
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        per_setting: dict[str, Counter[str]] = {}
        for r in mine:
            checks = claim_checks(r, records)
            for c in checks:
                per_setting.setdefault(c.setting, Counter())[c.verdict] += 1
            if not checks:
                per_setting.setdefault("-", Counter())[PENDING] += 1
        parts = []
        for setting, counts in per_setting.items():
            text = ", ".join(
                f"{counts[v]} {v}" for v in (*VERDICTS, PENDING) if counts[v]
            )
            where = "own parameters" if setting == "-" else f"{setting} setting"
            parts.append(f"{where}: {text}")
        out.append(f"- **{title}** ({len(mine)}): {'; '.join(parts)}.")
    return out


def verdict_rule_text() -> str:
    """The verdict rule in words (the margin comes from
    :data:`moecl_lib.claims.rule.MARGIN`)."""
    m = f"{MARGIN:g}"
    return (
        "A claim is checked through one or more readings, each comparing an estimate "
        "with a threshold. A reading **holds** when the estimate is on the claimed "
        f"side by at least {m} standard errors, **fails** when it is on the other side "
        f"by at least {m} standard errors, and is **inconclusive** otherwise. A claim "
        "is **reproduced** when every reading holds, **partly** reproduced when some "
        "hold and some fail, **not reproduced** when some fail and none holds, and "
        "**inconclusive** when none fails and some cannot be decided. Each setting "
        "gets its own verdict."
    )


def load_records(
    book_dir: Path,
) -> tuple[dict[str, Record], dict[str, str], dict[str, str]]:
    """Records, chapter titles and profiles of the executed notebooks in
    ``book_dir/generated``."""
    records: dict[str, Record] = {}
    titles: dict[str, str] = {}
    profiles: dict[str, str] = {}
    gen = book_dir / GENERATED_NOTEBOOKS
    for path in sorted(gen.glob("*.ipynb")) if gen.is_dir() else []:
        nb = json.loads(path.read_text(encoding="utf-8"))
        titles[path.stem] = chapter_title(nb, path.stem)
        profiles[path.stem] = str(
            nb.get("metadata", {}).get("moecl", {}).get("profile", "quick")
        )
        rec = record_from_notebook(nb)
        if rec is not None:
            records[rec.chapter] = rec
    return records, titles, profiles


SETTINGS_TABLE = Path("generated") / "_settings_table.md"
"""The two parameter settings side by side (included by the fidelity ledger), relative
to ``book/``."""


def render_settings_table() -> str:
    """Markdown table: every option of ``ExperimentConfig`` that a setting fixes, with
    the config default and the values of the recalled and calibrated settings (from
    :mod:`moecl_lib.analysis.calibration`, never typed by hand)."""
    import dataclasses

    from moecl_lib.analysis.calibration import SETTINGS
    from moecl_lib.config import ExperimentConfig

    default = ExperimentConfig()
    names = [
        f.name
        for f in dataclasses.fields(ExperimentConfig)
        if any(f.name in values for values, _ in SETTINGS.values())
    ]

    def t1_rule(per_expert: float | None) -> str:
        return (
            "$\\lceil M/(\\eta\\sigma_0^{0.25})\\rceil$"
            if per_expert is None
            else f"${per_expert:g}\\,M$"
        )

    lines = [
        "| option | config default | " + " | ".join(SETTINGS) + " |",
        "|---|---|" + "---|" * len(SETTINGS),
    ]
    for name in names:
        vals = [
            f"`{values.get(name, getattr(default, name))}`"
            for values, _ in SETTINGS.values()
        ]
        lines.append(
            f"| `{name}` | `{getattr(default, name)}` | " + " | ".join(vals) + " |"
        )
    lines.append(
        "| `T1` | $\\lceil M/(\\eta\\sigma_0^{0.25})\\rceil$ | "
        + " | ".join(t1_rule(per) for _, per in SETTINGS.values())
        + " |"
    )
    return "\n".join(lines)


BUILD_INFO = Path("generated") / "_build_info.md"
"""Build information (included by ``book/build_info.md``), relative to ``book/``."""


def git_commit(root: Path) -> str:
    """``<sha> (modified)`` of the repository at ``root``, or ``unknown`` outside a git
    checkout."""
    import subprocess

    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return sha + (" (with uncommitted changes)" if dirty else "")


def render_build_info(
    records: Mapping[str, Record],
    titles: Mapping[str, str],
    profiles: Mapping[str, str],
    commit: str,
    reused: Mapping[str, Mapping[str, Any]] | None = None,
) -> str:
    """Markdown: commit, machine and package versions of the records, and one row per
    chapter (title, profile, wall time, date, and whether this build ran it or reused
    the stored run of identical inputs: ``reused``, stem -> ``metadata.moecl.reused``
    of :mod:`moecl_lib.tools.notebook_cache`)."""
    reused = reused or {}
    lines = [f"- **Commit:** `{commit}`"]
    machines = {
        json.dumps(rec.machine, sort_keys=True): rec.machine for rec in records.values()
    }
    for m in machines.values():
        env = (
            ", ".join(f"`{k}={v}`" for k, v in m.get("environment", {}).items())
            or "none set"
        )
        versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items() if v)
        lines += [
            f"- **CPU:** {m.get('cpu', '?')} ({m.get('cores', '?')} cores); kernel "
            f"variables: {env}",
            f"- **Python** {m.get('python', '?')} on {m.get('platform', '?')}; "
            f"{versions}",
        ]
    lines += [
        "",
        "| chapter | profile | wall time [s] | run on | in this build |",
        "|---|---|---|---|---|",
    ]
    total = 0.0
    for chapter, rec in sorted(records.items()):
        wall = rec.wall_time_s
        total += wall or 0.0
        shown = f"{wall:.1f}" if wall is not None else "-"
        when = rec.created[:16].replace("T", " ")
        this_build = "reused" if chapter in reused else "run"
        lines.append(
            f"| {_link(chapter, titles)} | {profiles.get(chapter, '?')} | {shown} | "
            f"{when} | {this_build} |"
        )
    lines.append(f"| **total** | | **{total:.1f}** | | |")
    if reused:
        lines += [
            "",
            f"*Reused*: {len(reused)} of {len(records)} chapters were not run again; "
            "their library code, notebook, parameters, package versions, data and "
            "machine were those of the stored run shown (a SHA-256 over all of them "
            "matched). `make book CACHE=off` runs every chapter.",
        ]
    return "\n".join(lines)


def reused_chapters(book_dir: Path) -> dict[str, dict[str, Any]]:
    """stem -> ``metadata.moecl.reused`` of each generated notebook taken from the
    chapter cache (:mod:`moecl_lib.tools.notebook_cache`)."""
    from moecl_lib.tools.notebook_cache import REUSED_KEY

    out: dict[str, dict[str, Any]] = {}
    gen = book_dir / GENERATED_NOTEBOOKS
    for path in sorted(gen.glob("*.ipynb")) if gen.is_dir() else []:
        meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        entry = meta.get("moecl", {}).get(REUSED_KEY)
        if isinstance(entry, dict):
            out[path.stem] = entry
    return out


def write_status_page(book_dir: str | Path) -> Path:
    """Render ``book_dir/reproduction_status.csv`` with the build's records into
    ``book_dir/generated/…``."""
    book = Path(book_dir)
    records, titles, profiles = load_records(book)
    body = render_status(
        load_status(book / "reproduction_status.csv"), records, titles, profiles
    )
    out = book / GENERATED
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        verdict_rule_text() + "\n\n## Summary\n\n" + body + "\n", encoding="utf-8"
    )
    (book / SETTINGS_TABLE).write_text(render_settings_table() + "\n", encoding="utf-8")
    from moecl_lib.tools.glance import write_downloads, write_glance

    write_glance(book, load_status(book / "reproduction_status.csv"), records, titles)
    write_downloads(book, titles)
    from moecl_lib.tools.questions import QUESTIONS_FILE, write_questions

    if (book / QUESTIONS_FILE).is_file():  # the book's questions page (questions.md)
        rows = load_status(book / "reproduction_status.csv")
        write_questions(book, rows, records, titles)
    root = book.resolve().parent
    info = render_build_info(
        records, titles, profiles, git_commit(root), reused_chapters(book)
    )
    lock = root / "lock" / "dev.txt"
    if lock.is_file():
        from moecl_lib.tools.lockfile import lock_hash

        info = (
            f"- **Environment lock** `lock/dev.txt`, sha256 `{lock_hash(lock)}`\n"
            + info
        )
    (book / BUILD_INFO).write_text(info + "\n", encoding="utf-8")
    return out


# ----------------------------------------------------------- evidence = printed numbers

NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


def printed_text(nb: Mapping[str, Any]) -> str:
    """All text a notebook prints (stream outputs and ``text/plain`` results)."""
    parts = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            if out.get("output_type") == "stream":
                parts.append("".join(out.get("text", "")))
            elif "text/plain" in out.get("data", {}):
                parts.append("".join(out["data"]["text/plain"]))
    return "\n".join(parts)


def unmatched_numbers(book_dir: str | Path) -> list[str]:
    """Evidence numbers of the generated status page that the chapter they belong to did
    not print.

    Each evidence line (a reading) is checked against the printed output of its own
    chapter's executed notebook; returns ``"claim: number"`` for every number not found
    there (empty = consistent)."""
    book = Path(book_dir)
    rows = load_status(book / "reproduction_status.csv")
    records, _, _ = load_records(book)
    missing = []
    for r in rows:
        path = book / GENERATED_NOTEBOOKS / f"{r['chapter']}.ipynb"
        if not path.is_file():
            continue
        text = printed_text(json.loads(path.read_text(encoding="utf-8")))
        printed = {p.lstrip("+-") for p in NUMBER.findall(text)}
        for c in claim_checks(r, records):
            for rd in c.readings:
                for num in NUMBER.findall(reading_line(rd)):
                    if num.lstrip("+-") not in printed:
                        missing.append(f"{r['id']} [{c.setting}]: {num}")
    return missing
