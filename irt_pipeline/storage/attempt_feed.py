"""New rows of `student_attempts`, read in bounded pages by the exam-import sensor.

The feed follows ``student_attempts.id`` (an identity column: it only grows). Two queries, both
served by the primary key index and bounded however large the table is:

* `latest_attempt_id`: ``max(id)``, one index probe;
* `scan_attempts`: the item banks of at most ``limit`` attempts after an id, one index range
  scan of ``limit`` rows joined to ``items``.

Every statement runs under `STATEMENT_TIMEOUT_MS`, so a slow database fails the sensor tick
(which is retried with the same cursor) instead of running into Dagster's 60 s tick timeout.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

STATEMENT_TIMEOUT_MS = 20_000

_PAGE = """
WITH page AS (
  SELECT id, item_id FROM student_attempts
  WHERE id > %(after)s AND id <= %(upto)s
  ORDER BY id
  LIMIT %(limit)s
)
SELECT (SELECT max(id) FROM page),
       (SELECT count(*) FROM page),
       ARRAY(SELECT DISTINCT i.item_bank FROM page JOIN items i ON i.id = page.item_id ORDER BY 1)
"""


@dataclass(frozen=True)
class AttemptPage:
    """What one page of new attempts touched."""

    last_id: int                 # the page's highest attempt id (== upto_id when the range is empty)
    attempts: int                # rows read
    banks: tuple[str, ...]       # distinct item banks of those attempts, sorted


def _bound(conn: psycopg.Connection) -> None:
    conn.execute("SELECT set_config('statement_timeout', %s, false)", (str(STATEMENT_TIMEOUT_MS),))


def latest_attempt_id(conn: psycopg.Connection) -> int:
    """The highest attempt id (0 for an empty table)."""
    _bound(conn)
    (value,) = conn.execute("SELECT coalesce(max(id), 0) FROM student_attempts").fetchone()
    return int(value)


def scan_attempts(conn: psycopg.Connection, *, after_id: int, upto_id: int, limit: int) -> AttemptPage:
    """The item banks of the first `limit` attempts with after_id < id <= upto_id."""
    if limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    _bound(conn)
    last_id, attempts, banks = conn.execute(
        _PAGE, {"after": after_id, "upto": upto_id, "limit": limit}
    ).fetchone()
    # an id gap (rolled-back inserts) can leave the whole range empty: it is scanned all the same
    last = upto_id if last_id is None or attempts < limit else int(last_id)
    return AttemptPage(last_id=last, attempts=int(attempts), banks=tuple(banks))
