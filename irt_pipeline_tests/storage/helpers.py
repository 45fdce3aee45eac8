"""Row builders shared by the storage tests."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import pandas as pd
import psycopg

T0 = datetime(2026, 2, 1, 9, 0, tzinfo=timezone.utc)


def new_id() -> str:
    return str(uuid.uuid4())


def add_items(conn: psycopg.Connection, bank: str, n: int) -> list[str]:
    """Insert n items into the bank; return their ids."""
    ids = [new_id() for _ in range(n)]
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO items (id, item_bank) VALUES (%s, %s)", [(i, bank) for i in ids])
    return ids


def add_attempt(conn: psycopg.Connection, student: str, item: str, correct: bool, minutes: float = 0) -> int:
    """Insert one attempt at T0 + minutes; return its id."""
    (attempt_id,) = conn.execute(
        "INSERT INTO student_attempts (student_id, item_id, correct, attempted_at) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        (student, item, correct, T0 + timedelta(minutes=minutes)),
    ).fetchone()
    return attempt_id


def parameter_frame(item_ids: Sequence[str], a: float = 1.2, **overrides) -> pd.DataFrame:
    """A valid parameters frame, one row per item (column values overridable)."""
    frame = pd.DataFrame({
        "item_id": list(item_ids),
        "a": a,
        "b": [0.1 * k for k in range(len(item_ids))],
        "c": 0.2,
        "a_se": 0.1,
        "b_se": 0.08,
        "c_se": 0.03,
        "infit_mnsq": 1.01,
        "outfit_mnsq": 0.97,
        "is_flagged": False,
        "response_count": 150,
    })
    for name, value in overrides.items():
        frame[name] = value
    if "flag_reasons" not in overrides:  # a flagged row needs a reason (migration 0008)
        frame["flag_reasons"] = [["outfit"] if flagged else [] for flagged in frame["is_flagged"]]
    return frame


def publish(conn: psycopg.Connection, run_id: str, frame: pd.DataFrame) -> int:
    """publish_calibration with plausible run totals."""
    from irt_pipeline.storage import publish_calibration

    return publish_calibration(
        conn, run_id, frame, items_calibrated=len(frame), items_skipped=2,
        items_flagged=int(frame["is_flagged"].sum()), convergence_achieved=True,
        iterations_used=17, elapsed_seconds=3.5,
    )
