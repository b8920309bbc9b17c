"""Small pieces shared by the generated book pages (status, questions): a claim's checks
in a build, and text made safe for a Markdown table cell."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from moecl_lib.claims.record import Record


def table_cell(text: str) -> str:
    """Text safe inside a Markdown pipe-table cell."""
    return " ".join(text.split()).replace("|", "\\|")


def claim_checks(row: Mapping[str, str], records: Mapping[str, Record]) -> list[Any]:
    rec = records.get(row["chapter"])
    return [c for c in rec.checks if c.claim == row["id"]] if rec else []
