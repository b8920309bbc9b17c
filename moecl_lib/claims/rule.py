"""The written rules: how a claim's verdict is decided, and how far a re-computed number
may move.

**Readings and the verdict rule.** A claim is checked through one or more *readings*. A
reading compares an estimate with a threshold, ``estimate >= threshold`` (or ``<=``),
and carries the estimate's standard error. Its margin is
``z = (estimate - threshold) / se`` (sign flipped for ``<=``):

* ``holds`` when ``z >= MARGIN`` (the estimate is on the claimed side by at least
  ``MARGIN`` standard errors),
* ``fails`` when ``z <= -MARGIN``,
* ``inconclusive`` otherwise: the data cannot decide at this size.

A deterministic reading (``se = 0``) holds or fails by the plain comparison; a tie is
inconclusive. A claim's verdict, per setting, follows from its readings:

* ``reproduced``: every reading holds;
* ``partly``: at least one reading holds and at least one fails;
* ``not reproduced``: at least one reading fails and none holds;
* ``inconclusive``: no reading fails and at least one is inconclusive.

**Tolerance rule for re-computed numbers.** A quantity recorded by a chapter is compared
with its stored value (``notebooks/expected/``) at
``tol = max(floor, q * sqrt(se_stored^2 + se_new^2))``, where ``floor`` is the
quantity's own floor (``DETERMINISTIC_FLOOR`` relative to ``max(1, |value|)`` for a
deterministic quantity) and ``q`` is the quantile of Student's t with ``n - 1`` degrees
of freedom (``n`` the smaller of the two sample sizes) that a normal law reaches at
``Z_TOLERANCE`` standard errors: a two-sided false-alarm probability of ``6.3e-5``.
``q`` is 4.3 at 64 samples, 17.5 at 5 and about 10^4 at 2: an estimate from two samples
is hardly checked, because its standard error is hardly known, and one from a single
sample, with no standard error and no floor, is not compared. Two estimates of the same
mean made on two machines, or with two random streams, differ by less than this with
overwhelming probability even when every run followed another trajectory. Round-off
quantities (``kind="roundoff"``) are recorded, never compared.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

MARGIN = 2.0
"""Standard errors by which a reading must clear its threshold to hold (or to fail)."""
Z_TOLERANCE = 4.0
"""Combined standard errors a re-computed estimate may move before the tolerance check
fails."""
DETERMINISTIC_FLOOR = 1e-6
"""Relative floor for deterministic quantities (compared to ``max(1, |value|)``)."""


def tolerance_quantile(n: int) -> float:
    """Multiple of the combined standard error allowed for estimates from ``n``
    samples: Student's t quantile with ``n - 1`` degrees of freedom at the two-sided
    level of ``Z_TOLERANCE`` normal standard errors (``Z_TOLERANCE`` itself when ``n``
    is unknown, i.e. below 2)."""
    if n < 2:
        return Z_TOLERANCE
    from scipy import stats

    level = stats.norm.sf(Z_TOLERANCE)
    return float(stats.t.isf(level, n - 1))


NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
"""Quantity names: identifiers (they are also myst-nb glue keys)."""

Outcome = Literal["holds", "fails", "inconclusive"]
Verdict = Literal["reproduced", "partly", "not reproduced", "inconclusive"]
Kind = Literal["estimate", "exact", "roundoff"]
OUTCOMES: tuple[str, ...] = ("holds", "fails", "inconclusive")
VERDICTS: tuple[str, ...] = ("reproduced", "partly", "not reproduced", "inconclusive")
KINDS: tuple[str, ...] = ("estimate", "exact", "roundoff")


def _finite(x: Any, name: str) -> float:
    v = float(x)
    if math.isnan(v):
        raise ValueError(f"{name} is NaN")
    return v


@dataclass(frozen=True)
class Quantity:
    """A named number a chapter reports.

    ``se`` is the standard error of ``value`` (over ``n`` independent runs or seeds);
    ``kind`` says how it is compared across machines: ``estimate`` (tolerance from
    ``se`` and ``floor``), ``exact`` (a deterministic number: relative floor),
    ``roundoff`` (never compared). ``floor`` is an absolute tolerance floor, needed
    where ``se`` is estimated from few seeds.
    """

    name: str
    value: float
    se: float = 0.0
    n: int = 1
    kind: Kind = "estimate"
    floor: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        if not NAME.fullmatch(self.name):
            raise ValueError(
                f"quantity name {self.name!r} must match {NAME.pattern} (it is a "
                "glue key)"
            )
        if self.kind not in KINDS:
            raise ValueError(
                f"quantity {self.name!r}: kind={self.kind!r} must be one of "
                f"{list(KINDS)}"
            )
        se = float(self.se)
        if not math.isfinite(
            se
        ):  # a single run has no standard error: treat as 0 and rely on the floor
            se = 0.0
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "se", abs(se))
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "floor", abs(float(self.floor)))

    def tolerance(self, other: Quantity) -> float:
        """Allowed ``|self.value - other.value|`` under the tolerance rule (module
        docstring)."""
        if self.kind == "exact":
            floor = max(self.floor, DETERMINISTIC_FLOOR * max(1.0, abs(self.value)))
            return floor
        if self.se == 0.0 == other.se and min(self.n, other.n) < 2 and not self.floor:
            return math.inf  # one sample, no s.e. and no floor: not compared
        q = tolerance_quantile(min(self.n, other.n))
        return max(self.floor, q * math.hypot(self.se, other.se))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "se": self.se,
            "n": self.n,
            "kind": self.kind,
            "floor": self.floor,
            "label": self.label,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Quantity:
        return cls(
            **{
                k: d[k]
                for k in ("name", "value", "se", "n", "kind", "floor", "label")
                if k in d
            }
        )


def estimate(
    name: str, samples: Any, *, floor: float = 0.0, label: str = ""
) -> Quantity:
    """Mean of ``samples`` (one value per independent run or seed; NaNs dropped) with
    its standard error (sample standard deviation, ``ddof=1``, over ``sqrt(n)``)."""
    x = np.asarray(samples, dtype=float).ravel()
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise ValueError(f"quantity {name!r}: no finite samples")
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return Quantity(name, float(x.mean()), se, int(x.size), "estimate", floor, label)


@dataclass(frozen=True)
class Reading:
    """One comparison ``estimate >= threshold`` (``sense=">="``) or
    ``estimate <= threshold``, with the estimate's standard error; ``statement`` is the
    reader's wording of it."""

    name: str
    statement: str
    estimate: float
    threshold: float
    se: float = 0.0
    sense: Literal[">=", "<="] = ">="

    def __post_init__(self) -> None:
        if self.sense not in (">=", "<="):
            raise ValueError(f"reading {self.name!r}: sense must be '>=' or '<='")
        object.__setattr__(
            self, "estimate", _finite(self.estimate, f"reading {self.name!r} estimate")
        )
        object.__setattr__(self, "threshold", float(self.threshold))
        se = float(self.se)
        object.__setattr__(self, "se", abs(se) if math.isfinite(se) else 0.0)

    @property
    def z(self) -> float:
        """Signed margin in standard errors (positive = on the claimed side); +-inf when
        ``se == 0``."""
        diff = self.estimate - self.threshold
        if self.sense == "<=":
            diff = -diff
        if self.se > 0:
            return diff / self.se
        return math.inf if diff > 0 else (-math.inf if diff < 0 else 0.0)

    @property
    def outcome(self) -> Outcome:
        z = self.z
        if z >= MARGIN:
            return "holds"
        if z <= -MARGIN:
            return "fails"
        return "inconclusive"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "statement": self.statement,
            "estimate": self.estimate,
            "threshold": self.threshold,
            "se": self.se,
            "sense": self.sense,
            "outcome": self.outcome,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Reading:
        return cls(
            d["name"],
            d["statement"],
            d["estimate"],
            d["threshold"],
            d.get("se", 0.0),
            d.get("sense", ">="),
        )


def verdict_of(outcomes: Iterable[str]) -> Verdict:
    """The verdict rule (module docstring) applied to the outcomes of a claim's
    readings."""
    out = list(outcomes)
    if not out:
        raise ValueError("a claim needs at least one reading")
    bad = sorted(set(out) - set(OUTCOMES))
    if bad:
        raise ValueError(f"unknown outcomes {bad}; expected {list(OUTCOMES)}")
    holds, fails = "holds" in out, "fails" in out
    if all(o == "holds" for o in out):
        return "reproduced"
    if holds and fails:
        return "partly"
    if fails:
        return "not reproduced"
    return "inconclusive"


@dataclass(frozen=True)
class ClaimCheck:
    """The readings of one claim (``claim`` = id in ``book/reproduction_status.csv``) in
    one ``setting`` (``"calibrated"``, ``"recalled"`` or ``"-"`` where the chapter has
    no named setting)."""

    claim: str
    setting: str
    readings: tuple[Reading, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "readings", tuple(self.readings))
        if not self.readings:
            raise ValueError(
                f"claim {self.claim!r} ({self.setting}): at least one reading"
            )

    @property
    def verdict(self) -> Verdict:
        return verdict_of(r.outcome for r in self.readings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "claim": self.claim,
            "setting": self.setting,
            "verdict": self.verdict,
            "readings": [r.to_dict() for r in self.readings],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClaimCheck:
        return cls(
            d["claim"], d["setting"], tuple(Reading.from_dict(r) for r in d["readings"])
        )


def fmt_number(x: float, se: float = 0.0, digits: int = 3) -> str:
    """The one way a number (and its standard error) is printed in chapters and on the
    status page: ``digits`` significant digits, ``value ± se`` with the same number of
    decimals."""
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        dec = digits - 1
    else:
        dec = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    dec = min(dec, 6)
    s = f"{x:.{dec}f}"
    if se and math.isfinite(se):
        s += f" ± {se:.{dec}f}"
    return s


def fmt_z(z: float) -> str:
    """A margin in standard errors, as printed (``inf`` for deterministic readings)."""
    if math.isinf(z):
        return "exact"
    return f"{z:+.1f}"


def reading_line(r: Reading, digits: int = 3) -> str:
    """``statement: estimate ± se vs threshold (z = +3.1): holds``."""
    sign = "≥" if r.sense == ">=" else "≤"
    return (
        f"{r.statement}: {fmt_number(r.estimate, r.se, digits)} {sign} "
        f"{fmt_number(r.threshold, 0, digits)} (margin {fmt_z(r.z)} s.e.) → "
        f"{r.outcome}"
    )


def verdict_lines(checks: Sequence[ClaimCheck]) -> str:
    """One stable line per (claim, setting): ``claim [setting]: verdict``; printed in
    nbval-checked cells."""
    return "\n".join(f"{c.claim} [{c.setting}]: {c.verdict}" for c in checks)
