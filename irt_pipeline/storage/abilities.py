"""Student abilities on the bank scale (issue 9): written with a run's parameters, read back as
`IrtStudentAbility`.

`write_abilities` writes every student of one run in a single binary COPY (numpy columns, no
Python loop per row for the data) and never opens or commits a transaction of its own: the
caller runs it inside the transaction that publishes the run's parameters, so both are written
or neither is, and `estimated_at` (the column default, now(): the transaction's start time)
equals the parameters' `calibrated_at`. The view `irt_student_abilities_latest` serves each
student's latest ability per bank from completed runs only.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
import psycopg
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg.rows import dict_row

from irt_pipeline.errors import ValidationError
from irt_pipeline.models import IrtStudentAbility
from irt_pipeline.storage._ids import parse_uuid, uuid_or_none
from irt_pipeline.storage.binary_copy import copy_columns, repeated_text_column, repeated_uuid_column

ABILITY_FIELDS = tuple(IrtStudentAbility.model_fields)
_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, ABILITY_FIELDS))
_MAX_INT4 = 2**31 - 1

# Hex digit value of each byte (255: not a hex digit), for the vectorized UUID parse.
_HEX = np.full(256, 255, dtype=np.uint8)
_HEX[np.frombuffer(b"0123456789", np.uint8)] = np.arange(10)
_HEX[np.frombuffer(b"abcdef", np.uint8)] = np.arange(10, 16)
_HEX[np.frombuffer(b"ABCDEF", np.uint8)] = np.arange(10, 16)
_HYPHENS = np.array([8, 13, 18, 23])
_DIGITS = np.setdiff1d(np.arange(36), _HYPHENS)


def write_abilities(
    conn: psycopg.Connection,
    run_id: str,
    item_bank: str,
    student_ids: Sequence[str],
    theta,
    theta_se,
    response_counts,
) -> int:
    """Write one run's student abilities (one row per student); return the row count.

    Validates everything first and raises ValidationError naming the problem (and the student)
    with nothing written: equal lengths; student ids distinct UUIDs; theta finite; theta_se
    finite and > 0; response counts whole numbers >= 1; the run exists and is of `item_bank`.
    Then replaces the rows a previous attempt of the same run wrote, in one binary COPY.

    Runs inside the caller's transaction and never commits: on an autocommit connection call it
    within ``conn.transaction()`` (refused otherwise: the delete and the write would not be one
    unit: RuntimeError); `estimated_at` is left to its default, the transaction's start time.
    """
    run = parse_uuid(run_id, "calibration run id")
    if not isinstance(item_bank, str) or not item_bank:
        raise ValidationError(f"item_bank must be a non-empty string: {item_bank!r}")
    if conn.autocommit and conn.info.transaction_status != TransactionStatus.INTRANS:
        raise RuntimeError(
            "write_abilities must run inside the caller's transaction (an autocommit connection "
            "outside conn.transaction() would write the rows one statement at a time)"
        )
    ids = _student_column(student_ids)
    lengths = {"student_ids": len(ids)}
    values = {}
    for name, column in (("theta", theta), ("theta_se", theta_se), ("response_counts", response_counts)):
        values[name] = _float_column(name, column)
        lengths[name] = len(values[name])
    if len(set(lengths.values())) > 1:
        raise ValidationError(
            "student_ids, theta, theta_se and response_counts differ in length: "
            + ", ".join(f"{name} {n}" for name, n in lengths.items())
        )
    _check_distinct(ids)
    thetas, ses, counts = values["theta"], values["theta_se"], values["response_counts"]
    _require(ids, "theta", thetas, np.isfinite(thetas), "is not a finite number")
    _require(ids, "theta_se", ses, np.isfinite(ses) & (ses > 0), "is not a finite number > 0")
    _require(ids, "response_count", counts,
             np.isfinite(counts) & (counts >= 1) & (counts <= _MAX_INT4) & (counts == np.round(counts)),
             "is not a whole number >= 1")
    _check_run(conn, run, item_bank)

    n = len(ids)
    conn.execute("DELETE FROM irt_student_abilities WHERE calibration_run_id = %s", (run,))
    if n == 0:
        return 0
    # Rows in student order: the primary key's inserts (run, student) then walk the index in key
    # order instead of at random.
    order = _uuid_order(ids)
    return copy_columns(conn, "irt_student_abilities", {
        "student_id": ids[order],
        "item_bank": repeated_text_column(item_bank, n),
        "calibration_run_id": repeated_uuid_column(run, n),
        "theta": thetas[order].astype(">f8"),
        "theta_se": ses[order].astype(">f8"),
        "response_count": counts[order].astype(">i4"),
    })


def latest_ability(conn: psycopg.Connection, student_id: str, item_bank: str) -> IrtStudentAbility | None:
    """The student's ability on the bank from its latest completed run, or None (unknown or
    malformed id, or no completed run of the bank estimated it)."""
    student = uuid_or_none(student_id)
    if student is None:
        return None
    query = sql.SQL("SELECT {} FROM irt_student_abilities_latest WHERE student_id = %s AND item_bank = %s").format(
        _COLUMNS)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, (student, item_bank)).fetchone()
    return None if row is None else IrtStudentAbility.model_validate(row)


def run_abilities(conn: psycopg.Connection, run_id: str) -> list[IrtStudentAbility]:
    """Every ability row of one calibration run (whatever its status), by student id; empty for
    an unknown or malformed run id."""
    run = uuid_or_none(run_id)
    if run is None:
        return []
    query = sql.SQL(
        "SELECT {} FROM irt_student_abilities WHERE calibration_run_id = %s ORDER BY student_id").format(_COLUMNS)
    with conn.cursor(row_factory=dict_row) as cur:
        return [IrtStudentAbility.model_validate(row) for row in cur.execute(query, (run,))]


def _student_column(student_ids: Sequence[str]) -> np.ndarray:
    """The ids as 16-byte binary UUIDs. Canonical 36-character strings (any case) are parsed
    vectorized; anything else (UUID objects, other spellings, garbage) goes through
    `parse_uuid`, which accepts what `uuid.UUID` accepts and names the offending value."""
    ids = list(student_ids)
    n = len(ids)
    out = np.zeros(n, dtype="V16")
    if n == 0:
        return out
    try:
        joined = "".join(ids)
        canonical = np.fromiter(map(len, ids), dtype=np.int64, count=n) == 36
        if not joined.isascii():
            raise TypeError
    except TypeError:  # not all str, or some non-ASCII: find the rows that may be canonical
        canonical = np.fromiter(
            (isinstance(value, str) and len(value) == 36 and value.isascii() for value in ids), dtype=bool, count=n)
        joined = "".join(value for value, ok in zip(ids, canonical) if ok)
    else:
        if not canonical.all():
            joined = "".join(value for value, ok in zip(ids, canonical) if ok)
    rows = np.flatnonzero(canonical)
    codes = np.frombuffer(joined.encode("ascii"), dtype=np.uint8).reshape(-1, 36)
    nibbles = _HEX[codes]
    ok = (codes[:, _HYPHENS] == ord("-")).all(axis=1) & (nibbles[:, _DIGITS] < 16).all(axis=1)
    digits = nibbles[ok][:, _DIGITS]
    out[rows[ok]] = np.ascontiguousarray((digits[:, 0::2] << 4) | digits[:, 1::2]).view("V16").ravel()
    parsed = np.zeros(n, dtype=bool)
    parsed[rows[ok]] = True
    for k in np.flatnonzero(~parsed):
        out[k] = np.frombuffer(parse_uuid(ids[k], "student_id").bytes, dtype="V16")[0]
    return out


def _uuid_order(values: np.ndarray) -> np.ndarray:
    """The permutation that sorts 16-byte UUIDs as PostgreSQL does (bytewise)."""
    words = values.view(">u8").reshape(-1, 2)
    return np.lexsort((words[:, 1], words[:, 0]))


def _float_column(name: str, values) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} holds a value that is not a number") from None
    if array.ndim != 1:
        raise ValidationError(f"{name} must be one-dimensional (one value per student), got shape {array.shape}")
    return array


def _student(ids: np.ndarray, row: int) -> uuid.UUID:
    return uuid.UUID(bytes=ids[row].tobytes())


def _check_distinct(ids: np.ndarray) -> None:
    if len(set(ids.tolist())) == len(ids):
        return
    seen: set[bytes] = set()
    for row, value in enumerate(ids.tolist()):
        if value in seen:
            raise ValidationError(f"student {_student(ids, row)} is listed twice")
        seen.add(value)


def _require(ids: np.ndarray, name: str, values: np.ndarray, ok: np.ndarray, problem: str) -> None:
    if not ok.all():
        row = int(np.argmin(ok))
        raise ValidationError(f"{name} {problem} for student {_student(ids, row)}: {float(values[row])!r}")


def _check_run(conn: psycopg.Connection, run: uuid.UUID, item_bank: str) -> None:
    row = conn.execute("SELECT item_bank FROM irt_calibration_runs WHERE id = %s", (run,)).fetchone()
    if row is None:
        raise ValidationError(f"calibration run {run} does not exist; no ability was written")
    if row[0] != item_bank:
        raise ValidationError(
            f"calibration run {run} is a run of item bank {row[0]!r}, not {item_bank!r}; no ability was written"
        )
