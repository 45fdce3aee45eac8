"""Bulk COPY of numpy columns in PostgreSQL's binary format, without a Python loop per row.

Each row of ``COPY ... FROM STDIN (FORMAT BINARY)`` is a field count followed by (length,
value) pairs; for fixed-width types that is a numpy structured record, so a whole table is
one ``tobytes()``. Values must already be in the wire representation: see the converters.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence

import numpy as np
import psycopg
from psycopg import sql

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, header extension length
_TRAILER = b"\xff\xff"
_PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")


def uuid_column(values: Sequence[uuid.UUID]) -> np.ndarray:
    """UUIDs as 16-byte values (binary uuid)."""
    return np.frombuffer(b"".join(value.bytes for value in values), dtype="V16")


def timestamptz_column(values: np.ndarray) -> np.ndarray:
    """UTC numpy datetime64 values as microseconds since 2000-01-01 (binary timestamptz)."""
    return (values.astype("datetime64[us]") - _PG_EPOCH).astype(">i8")


def bool_column(values: np.ndarray) -> np.ndarray:
    """Booleans as one byte each (binary bool)."""
    return np.asarray(values, dtype=bool).astype("u1")


def copy_columns(conn: psycopg.Connection, table: str, columns: Mapping[str, np.ndarray]) -> int:
    """COPY equally long columns of fixed-width wire values into ``table``; return the row count."""
    names = list(columns)
    arrays = [np.asarray(columns[name]) for name in names]
    n_rows = len(arrays[0])
    if any(len(array) != n_rows for array in arrays):
        raise ValueError("columns differ in length")
    layout = [("n_fields", ">i2")]
    for k, array in enumerate(arrays):
        layout += [(f"length{k}", ">i4"), (f"value{k}", array.dtype)]
    records = np.empty(n_rows, dtype=layout)
    records["n_fields"] = len(arrays)
    for k, array in enumerate(arrays):
        records[f"length{k}"] = array.dtype.itemsize
        records[f"value{k}"] = array
    query = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    with conn.cursor() as cur, cur.copy(query) as copy:
        copy.write(_SIGNATURE)
        copy.write(records.tobytes())
        copy.write(_TRAILER)
    return n_rows


def repeated_text_column(value: str, n_rows: int) -> np.ndarray:
    """The same text in every row (binary text is the UTF-8 bytes); ``value`` must not be empty."""
    encoded = value.encode("utf-8")
    if not encoded:
        raise ValueError("an empty text has no fixed-width wire value")
    return np.frombuffer(encoded * n_rows, dtype=f"V{len(encoded)}")


def repeated_uuid_column(value: uuid.UUID, n_rows: int) -> np.ndarray:
    """The same UUID in every row."""
    return np.frombuffer(value.bytes * n_rows, dtype="V16")
