"""Small pieces shared by the generated book pages (status, questions, glance): a
claim's checks in a build, its verdict per setting, and text made safe for a Markdown
table cell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from moecl_lib.claims.record import Record


def table_cell(text: str) -> str:
    """Text safe inside a Markdown pipe-table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def checks_of(record: Record | None, claim: str) -> list[Any]:
    """The checks of ``claim`` in one chapter's record, in record order (none without a
    record)."""
    return [c for c in record.checks if c.claim == claim] if record else []


def claim_checks(row: Mapping[str, str], records: Mapping[str, Record]) -> list[Any]:
    """The checks of a status-table row's claim (``row["id"]``) in the record of its
    chapter (``row["chapter"]``)."""
    return checks_of(records.get(row["chapter"]), row["id"])


def verdict_by_setting(checks: Sequence[Any], no_setting: str = "-") -> dict[str, str]:
    """setting -> verdict of a claim's checks; a check without a calibrated or recalled
    setting (``"-"``) is listed under ``no_setting``."""
    return {no_setting if c.setting == "-" else c.setting: c.verdict for c in checks}
