"""``COPY (query) TO STDOUT (FORMAT BINARY)`` read as chunks of numpy records, never a Python
object per row (the reading side of binary_copy.py).

The stream is an 11-byte signature, int32 flags, an int32 header-extension length and the
extension, then per row an int16 field count and, per field, an int32 length (-1: NULL) and the
value, then the int16 trailer -1. When every field is fixed width and never NULL, every row is
the same numpy record (`record_dtype`), so the stream is cut into whole records and viewed with
``np.frombuffer``; a NULL or a value of another width shows up as a wrong length and is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import psycopg
from psycopg import sql

from irt_pipeline.storage.binary_copy import _SIGNATURE

_PREFIX = len(_SIGNATURE) - 4        # signature and flags; the extension length follows
_TRAILER = b"\xff\xff"
CHUNK_BYTES = 32 << 20               # records handed over at a time (about 0.7M rows of 47 bytes)

Query = str | sql.Composable


def record_dtype(fields: Sequence[tuple[str, str]]) -> np.dtype:
    """The wire record of one row: field count, then (length, value) per field, unaligned."""
    layout: list[tuple[str, str]] = [("n_fields", ">i2")]
    for name, wire_type in fields:
        layout += [(f"{name}_length", ">i4"), (name, wire_type)]
    return np.dtype(layout)


def copy_records(
    conn: psycopg.Connection,
    query: Query,
    params: Mapping[str, object] | None,
    fields: Sequence[tuple[str, str]],
    *,
    chunk_bytes: int | None = None,
) -> Iterator[np.ndarray]:
    """Yield the rows of ``query`` as structured arrays of `record_dtype(fields)`, about
    `chunk_bytes` (default CHUNK_BYTES) at a time. Each array views a buffer of its own (valid
    after the next one). ValueError when a row is not of that layout (a NULL, a variable-width
    value); a server error during the COPY is raised as psycopg raises it.

    The server sends one CopyData message per row. Rows libpq has already received are taken
    straight from it (``pgconn.get_copy_data``, one C call a row); psycopg's `Copy.read` (a
    generator and a wait per call, about 1 us a row if used for every row) only waits for the
    socket when none is buffered."""
    threshold = max(chunk_bytes or CHUNK_BYTES, 64)
    dtype = record_dtype(fields)
    width = dtype.itemsize
    statement = sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(
        sql.SQL(query) if isinstance(query, str) else query
    )
    buffer = bytearray()
    header_left = -1                  # bytes of header still to skip; -1: not read yet
    with conn.cursor() as cur, cur.copy(statement, params) as copy:
        get_copy_data = copy.connection.pgconn.get_copy_data
        while True:
            nbytes, data = get_copy_data(1)
            if nbytes > 0:
                buffer += data
                if len(buffer) < threshold:
                    continue
            elif nbytes == 0:         # nothing received yet: psycopg waits for the socket
                data = copy.read()
                if not data:
                    break
                buffer += data
                if len(buffer) < threshold:
                    continue
            else:                     # the end of the COPY, or a server error
                _finish(copy)
                break
            if header_left < 0:
                header_left = _header_length(buffer)
            records, buffer = _cut(buffer, header_left, width)
            header_left = 0
            yield _checked(records, dtype, fields)
    if header_left < 0:
        if len(buffer) < len(_SIGNATURE):
            raise ValueError("binary COPY ended before its header")
        header_left = _header_length(buffer)
    records, rest = _cut(buffer, header_left, width)
    if bytes(rest) != _TRAILER:
        raise ValueError(f"binary COPY rows are not {width}-byte records of {[n for n, _ in fields]} "
                         "(a NULL or a value of another width?)")
    if len(records):
        yield _checked(records, dtype, fields)


def _finish(copy: psycopg.Copy) -> None:
    """After get_copy_data's end of data: take the COPY's results off the connection as psycopg's
    own reader does (`psycopg.generators.copy_from`), tell the Copy it is finished (else its exit
    would read on), and raise the server's error if there is one."""
    pgconn = copy.connection.pgconn
    results = []
    while (result := pgconn.get_result()) is not None:
        results.append(result)
    copy._finished = True  # noqa: SLF001 - psycopg 3's flag: the COPY's result has been read
    for result in results:
        if result.status != psycopg.pq.ExecStatus.COMMAND_OK:
            raise psycopg.errors.error_from_result(result, encoding=copy.connection.info.encoding)


def _header_length(buffer: bytearray) -> int:
    if bytes(buffer[: len(_SIGNATURE) - 8]) != _SIGNATURE[: len(_SIGNATURE) - 8]:
        raise ValueError("not a binary COPY stream (bad signature)")
    extension = int.from_bytes(buffer[_PREFIX:_PREFIX + 4], "big")
    return _PREFIX + 4 + extension


def _cut(buffer: bytearray, skip: int, width: int) -> tuple[np.ndarray, bytearray]:
    """The whole records after `skip` bytes, and the bytes left over (a copy of the tail only)."""
    n_rows = (len(buffer) - skip) // width
    end = skip + n_rows * width
    rest = bytearray(buffer[end:])
    return np.frombuffer(buffer, dtype=f"V{width}", count=n_rows, offset=skip), rest


def _checked(records: np.ndarray, dtype: np.dtype, fields: Sequence[tuple[str, str]]) -> np.ndarray:
    records = records.view(dtype)
    if (records["n_fields"] != len(fields)).any():
        raise ValueError(f"binary COPY rows do not have {len(fields)} fields")
    for name, _ in fields:
        if (records[f"{name}_length"] != dtype[name].itemsize).any():
            raise ValueError(f"binary COPY column {name} is NULL or not {dtype[name].itemsize} bytes wide")
    return records
