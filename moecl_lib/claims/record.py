"""A chapter's record: its quantities, claim checks, parameters, configuration and the
machine that ran it.

Each executed chapter *publishes* its record twice: as ``record.json`` in its
``out_dir`` and as a hidden myst-nb ``glue`` output named :data:`RECORD_KEY` inside the
executed notebook, so that the book's status page is generated from the very notebooks
the book renders (:func:`records_from_notebooks`).

The quick profile's record is compared with ``notebooks/expected/<chapter>.json``
(:func:`compare`) at the tolerances of :mod:`moecl_lib.claims.rule`; ``moecl expect``
(re)writes that file from an executed notebook.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import platform
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from moecl_lib.claims.rule import ClaimCheck, Quantity, fmt_number, verdict_lines

RECORD_KEY = "moecl_record"
"""Name of the glued record output inside an executed chapter notebook."""
EXPECTED_DIR = Path("notebooks") / "expected"
"""Stored quick-profile expectations, relative to the repository root."""
PACKAGES = (
    "numpy",
    "scipy",
    "numba",
    "torch",
    "scikit-learn",
    "matplotlib",
    "moecl-lib",
)
#: Environment variables that select CPU kernels; recorded with every run.
KERNEL_VARIABLES = (
    "ATEN_CPU_CAPABILITY",
    "OPENBLAS_CORETYPE",
    "NUMBA_CPU_NAME",
    "NPY_DISABLE_CPU_FEATURES",
    "OMP_NUM_THREADS",
)


class ExpectationError(AssertionError):
    """A recorded number moved beyond its tolerance, or the record does not match its
    stored expectation."""


def _jsonable(x: Any) -> Any:
    """Plain-JSON copy of ``x`` (numpy scalars and arrays, tuples, paths; NaN/inf as
    strings)."""
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


def cpuinfo_field(name: str) -> str | None:
    """The first ``name : value`` line of ``/proc/cpuinfo`` (None where there is
    none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``), or ``platform.processor()``."""
    return cpuinfo_field("model name") or platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Python, package versions, CPU, core count and the kernel-selecting environment
    variables."""
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "versions": versions,
        "environment": {k: os.environ[k] for k in KERNEL_VARIABLES if k in os.environ},
    }


@dataclass
class Record:
    """Everything a chapter reports, in plain data. ``params`` are the notebook's
    parameter values (the profile's), ``configs`` the full configurations it ran (name
    -> dict), ``seeds`` the seeds used."""

    chapter: str
    params: dict[str, Any]
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)
    wall_time_s: float | None = None
    machine: dict[str, Any] = field(default_factory=machine_info)
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    )

    def __post_init__(self) -> None:
        names = [q.name for q in self.quantities]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"record {self.chapter}: duplicate quantity names {dup}")

    def quantity(self, name: str) -> Quantity:
        return find_quantity(self.quantities, name, self.chapter)

    def check(self, claim: str, setting: str) -> ClaimCheck:
        for c in self.checks:
            if c.claim == claim and c.setting == setting:
                return c
        raise KeyError(f"record {self.chapter}: no check {claim!r} [{setting}]")

    def verdicts(self) -> str:
        return verdict_lines(self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "chapter": self.chapter,
            "params": _jsonable(self.params),
            "quantities": [q.to_dict() for q in self.quantities],
            "checks": [c.to_dict() for c in self.checks],
            "configs": _jsonable(self.configs),
            "seeds": _jsonable(self.seeds),
            "wall_time_s": self.wall_time_s,
            "machine": self.machine,
            "created": self.created,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Record:
        return cls(
            chapter=d["chapter"],
            params=dict(d.get("params", {})),
            quantities=[Quantity.from_dict(q) for q in d.get("quantities", [])],
            checks=[ClaimCheck.from_dict(c) for c in d.get("checks", [])],
            configs=dict(d.get("configs", {})),
            seeds=list(d.get("seeds", [])),
            wall_time_s=d.get("wall_time_s"),
            machine=dict(d.get("machine", {})),
            created=d.get("created", ""),
        )

    @classmethod
    def from_json(cls, text: str) -> Record:
        return cls.from_dict(json.loads(text))


def publish(record: Record, out_dir: str | Path) -> Path:
    """Write ``out_dir/record.json`` and glue the record (hidden) into the running
    notebook, if any."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "record.json"
    text = record.to_json()
    path.write_text(text + "\n", encoding="utf-8")
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the kernel
        return path
    if get_ipython() is not None:
        from myst_nb import glue

        glue(RECORD_KEY, text, display=False)
        for name, shown in glue_values(record).items():
            glue(name, shown, display=False)
    return path


def glue_values(record: Record) -> dict[str, str]:
    """What :func:`publish` glues for prose: every quantity as ``"value ± se"`` under
    its name, and every verdict as ``verdict_<claim>_<setting>``. In a chapter's
    Markdown: ``{glue:text}`G_T_never```."""
    out = {
        q.name: fmt_number(q.value, q.se)
        for q in record.quantities
        if q.kind != "roundoff"
    }
    for c in record.checks:
        out[f"verdict_{c.claim}_{c.setting}".replace("-", "any")] = c.verdict
    return out


def outcome_texts(checks: Sequence[ClaimCheck]) -> dict[str, str]:
    """Glue texts ``outcome_<claim>_<setting>_<reading>`` -> ``holds`` / ``fails``
    / ``inconclusive``, for prose whose wording must follow the data at every
    profile."""
    return {
        f"outcome_{c.claim}_{c.setting}_{r.name}".replace("-", "any"): r.outcome
        for c in checks
        for r in c.readings
    }


def reading_outcome_texts(checks: Sequence[ClaimCheck]) -> dict[str, str]:
    """Glue texts ``outcome_<reading>`` -> ``holds`` / ``fails`` / ``inconclusive``
    (chapters whose reading names are unique across their checks)."""
    return {f"outcome_{r.name}": r.outcome for c in checks for r in c.readings}


def record_from_notebook(nb: Mapping[str, Any]) -> Record | None:
    """The record glued into an executed notebook (JSON dict), or ``None``."""
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) if cell.get("cell_type") == "code" else []:
            meta = out.get("metadata", {}).get("scrapbook", {})
            if meta.get("name") == RECORD_KEY:
                data = out.get("data", {})
                text = next(
                    (v for k, v in data.items() if k.endswith("text/plain")), ""
                )
                text = "".join(text) if isinstance(text, list) else text
                import ast

                return Record.from_json(ast.literal_eval(text))
    return None


def records_from_notebooks(paths: Iterable[Path]) -> dict[str, Record]:
    """chapter -> record for every executed notebook in ``paths`` that holds one."""
    out: dict[str, Record] = {}
    for p in paths:
        rec = record_from_notebook(json.loads(Path(p).read_text(encoding="utf-8")))
        if rec is not None:
            out[rec.chapter] = rec
    return out


# ------------------------------------------------------------------------- expectations


def expected_path(chapter: str, root: Path | None = None) -> Path:
    """``<repo>/notebooks/expected/<chapter>.json`` (repository root found from the
    working directory)."""
    if root is None:
        from moecl_lib.paths import find_repo_root

        root = find_repo_root()
    return root / EXPECTED_DIR / f"{chapter}.json"


def expectation(record: Record) -> dict[str, Any]:
    """What is stored as the expectation of a record: parameters, compared quantities
    and verdicts."""
    return {
        "chapter": record.chapter,
        "params": _jsonable(record.params),
        "quantities": [q.to_dict() for q in record.quantities if q.kind != "roundoff"],
        "verdicts": {f"{c.claim} [{c.setting}]": c.verdict for c in record.checks},
    }


def write_expected(record: Record, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(expectation(record), indent=1, ensure_ascii=False) + "\n",
        encoding="utf-8",
    )
    return path


@dataclass(frozen=True)
class Mismatch:
    quantity: str
    stored: float
    new: float
    tolerance: float

    def message(self, chapter: str) -> str:
        return (
            f"{chapter}: {self.quantity}: stored {self.stored:.6g}, new "
            f"{self.new:.6g}, |difference| {abs(self.new - self.stored):.3g} > "
            f"tolerance {self.tolerance:.3g}"
        )


def mismatches(record: Record, expected: Mapping[str, Any]) -> list[Mismatch]:
    """Quantities of ``record`` farther from ``expected`` than their tolerance (a stored
    quantity missing from the record counts as a mismatch with ``new = nan``; round-off
    quantities are skipped)."""
    got = {q.name: q for q in record.quantities}
    bad = []
    for d in expected.get("quantities", []):
        stored = Quantity.from_dict(d)
        if stored.kind == "roundoff":
            continue
        new = got.get(stored.name)
        if new is None:
            bad.append(Mismatch(stored.name, stored.value, math.nan, 0.0))
            continue
        tol = stored.tolerance(new)
        if not abs(new.value - stored.value) <= tol:
            bad.append(Mismatch(stored.name, stored.value, new.value, tol))
    return bad


def compare(record: Record, path: Path | None = None) -> str:
    """Compare ``record`` with its stored expectation; returns a stable one-line
    summary.

    Only a record whose parameters equal the stored ones is compared (other parameter
    values, e.g. the paper profile, have no stored expectation). Raises
    :class:`ExpectationError` naming every quantity that moved beyond its tolerance
    (chapter, quantity, stored value, new value, tolerance).
    """
    path = path or expected_path(record.chapter)
    if not path.is_file():
        return f"no stored expectation ({path.name}): not compared"
    expected = json.loads(path.read_text(encoding="utf-8"))
    if _jsonable(record.params) != expected.get("params"):
        return "parameters differ from the stored quick profile: not compared"
    lines = [m.message(record.chapter) for m in mismatches(record, expected)]
    now = {f"{c.claim} [{c.setting}]": c.verdict for c in record.checks}
    for key, stored in expected.get("verdicts", {}).items():
        if now.get(key) != stored:
            lines.append(
                f"{record.chapter}: verdict {key}: stored {stored!r}, new "
                f"{now.get(key)!r}"
            )
    if lines:
        raise ExpectationError("\n".join(lines))
    n = sum(1 for d in expected.get("quantities", []) if d.get("kind") != "roundoff")
    return (
        f"{n} recorded quantities within tolerance of the stored quick-profile values"
    )


def summary_rows(
    quantities: Sequence[Quantity], digits: int = 3
) -> list[dict[str, str]]:
    """Rows ``{quantity, value}`` for a chapter's table of recorded quantities
    (``label`` or ``name``)."""
    return [
        {"quantity": q.label or q.name, "value": fmt_number(q.value, q.se, digits)}
        for q in quantities
    ]


# ---------------------------------------------------------------------- chapter results


def find_quantity(quantities: Iterable[Quantity], name: str, chapter: str) -> Quantity:
    """The quantity called ``name`` (``KeyError`` naming the chapter if there is
    none)."""
    for q in quantities:
        if q.name == name:
            return q
    raise KeyError(f"record {chapter}: no quantity {name!r}")


class ChapterResult:
    """Shared part of every chapter's ``Result`` dataclass: its :class:`Record` and the
    lookup of a quantity by name.

    A subclass sets the class attribute ``chapter`` and has the fields ``params`` (a
    dataclass), ``quantities``, ``checks``, ``configs`` and ``wall_time_s``; the seeds
    recorded are its ``seeds`` field when it has one, else ``[params.seed]``
    (:meth:`record_seeds` may say otherwise).
    """

    chapter: ClassVar[str] = ""

    def record_seeds(self) -> list[int]:
        """Seeds named in the record."""
        seeds = getattr(self, "seeds", None)
        return list(seeds) if seeds is not None else [self.params.seed]  # type: ignore[attr-defined]

    @property
    def record(self) -> Record:
        """The chapter's record (plain data)."""
        return Record(
            chapter=self.chapter,
            params=asdict(self.params),  # type: ignore[attr-defined]
            quantities=self.quantities,  # type: ignore[attr-defined]
            checks=self.checks,  # type: ignore[attr-defined]
            configs=self.configs,  # type: ignore[attr-defined]
            seeds=self.record_seeds(),
            wall_time_s=self.wall_time_s,  # type: ignore[attr-defined]
        )

    def quantity(self, name: str) -> Quantity:
        """The quantity called ``name``."""
        return find_quantity(self.quantities, name, self.chapter)  # type: ignore[attr-defined]


P = TypeVar("P")
D = TypeVar("D")


@dataclass
class SettingsResult(ChapterResult, Generic[P, D]):
    """A chapter ``Result`` made of one block of data per setting: the parameters
    ``params`` (a dataclass), ``data`` (setting -> its measurements), the quantities and
    claim checks, the configurations run (name -> dict), the wall time and the seeds."""

    params: P
    data: dict[str, D]
    quantities: list[Quantity]
    checks: list[ClaimCheck]
    configs: dict[str, Any]
    wall_time_s: float
    seeds: list[int] = field(default_factory=list)
