"""The one text-table printer (moecl_lib.figures.tables)."""

from __future__ import annotations

from moecl_lib.figures.tables import table, text_table


def test_text_table_aligns_and_rules() -> None:
    out = text_table(
        ["name", "x"], [["a", "1.5"], ["long", "10.0"]], align="<", rule=True,
        footer=[("total", "11.5")],
    )  # fmt: skip
    assert out.splitlines() == [
        "name     x",
        "----------",
        "a      1.5",
        "long  10.0",
        "----------",
        "total  11.5",
    ]


def test_table_of_dict_rows_rounds_numbers() -> None:
    out = table([{"M": 1, "G": 0.12345}, {"M": 10, "G": 2.0}], digits=2)
    assert out.splitlines() == [" M     G", " 1  0.12", "10  2.00"]
    assert table([]) == ""
