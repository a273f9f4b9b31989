"""Loader of GWCelery's test tables (tests/data/gwcelery_tables/*.json).

Each JSON file holds rows taken from GWCelery's own test suite (facts and numbers
only; see tests/data/gwcelery_tables/SOURCES.md); every row names its source in a
``source`` field, which the table tests use as the pytest id so that a failure says
which GWCelery test row diverges.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

TABLES = Path(__file__).parent / "data" / "gwcelery_tables"


def rows(name: str, keep=lambda row: True) -> list:
    """``pytest.param`` per row of a table, id = row number + source test."""
    table = json.loads((TABLES / name).read_text())
    params = []
    for number, row in enumerate(table["rows"]):
        if keep(row):
            test_name = row["source"].split("::")[-1].split()[0]
            params.append(pytest.param(row, id=f"{number}-{test_name}"))
    return params


def in_2_5_0(row: dict) -> bool:
    """The row exists in GWCelery 2.5.0 (gw-ops follows 2.5.0's policy)."""
    return "2.5.0" in row["source"]
