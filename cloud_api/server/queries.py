"""The queries a storage operation asks its backend to run, and what differs per backend.

Operations (`operations.py`) are generators: they yield these values, each answered with
the rows it returned (an empty list for a write), and return their result. Writing SQL
once for both backends needs three things said per backend, which the drivers do: `?`
placeholders (PostgreSQL numbers them), a membership test against a list (`FetchIn`) and
an insert that reports which rows were new (`InsertNew`).
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Row = tuple[Any, ...]
Rows = list[Row]


@dataclass(frozen=True, slots=True)
class Fetch:
    """The rows of one statement (a SELECT, or a write with RETURNING)."""

    sql: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Execute:
    sql: str
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class ExecuteMany:
    sql: str
    rows: list[Row]


@dataclass(frozen=True, slots=True)
class FetchIn:
    """The rows of `sql` whose `{in}` stands for "is one of `values`" (text values)."""

    sql: str
    values: list[str]
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class InsertNew:
    """Insert the rows (all text) whose `conflict` columns (a unique key) match none
    stored; answers the `key` column of each row inserted, so a concurrent copy from
    another worker counts as already there."""

    table: str
    columns: str
    rows: list[Row]
    conflict: str
    key: str


Query = Fetch | Execute | ExecuteMany | FetchIn | InsertNew
Op = Generator[Query, Rows, T]


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the shared SQL cannot spell the same way on every backend."""

    # Appended to a SELECT of rows the transaction goes on to change: " FOR UPDATE" where
    # writers run side by side (PostgreSQL), "" where a write transaction already holds
    # the database's one write lock (SQLite's BEGIN IMMEDIATE).
    row_lock: str
    # One keyset page of the snapshot per phase (`operations.SNAPSHOT_PHASES`):
    # (mall, after, limit).
    snapshot_page_sql: Mapping[str, str]
