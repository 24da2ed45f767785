"""Many rows into one table in one statement on PostgreSQL.

psycopg runs an `executemany` as one prepared statement per row, and parses each of SQLAlchemy's
multi-row `INSERT … VALUES … RETURNING` anew (too long for its statement cache): together over
half of the batch handler's CPU (bench/RESULTS.md, Ingest). One `INSERT … SELECT FROM
json_populate_recordset(…)` sends the rows as one JSON parameter instead, written by orjson and
parsed by the server. SQLite's `executemany` is already a loop in C and stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table, text
from sqlalchemy.dialects import sqlite

from clicktune.jsontext import json_text


def insert_rows(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], conflict: Sequence[str] = ()
) -> int:
    """Insert `rows` (each with the same columns); with `conflict`, rows whose values on those
    unique columns are stored already are skipped. Returns how many were inserted."""
    if not rows:
        return 0
    if conn.dialect.name == "sqlite":
        statement = sqlite.insert(table)
        if conflict:
            statement = statement.on_conflict_do_nothing(index_elements=list(conflict))
        # sqlite3 sums an executemany's row counts: the rows inserted, skipped ones left out.
        return conn.execute(statement, list(rows)).rowcount
    quote = conn.dialect.identifier_preparer.quote
    columns = ", ".join(quote(table.c[name].name) for name in rows[0])
    name = quote(table.name)
    statement = (
        f"INSERT INTO {name} ({columns}) SELECT {columns} "
        f"FROM json_populate_recordset(NULL::{name}, CAST(:rows AS json))"
    )
    if conflict:
        unique = ", ".join(quote(table.c[column].name) for column in conflict)
        statement += f" ON CONFLICT ({unique}) DO NOTHING"
    return conn.execute(text(statement), {"rows": json_text(list(rows))}).rowcount
