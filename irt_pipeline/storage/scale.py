"""The bank scale: which run defined the scale a bank is on, and its items' current values.

The first completed run of a bank defines the bank's scale; a run linked to it, or a run that
asked for a new scale (`linking: none`), records the run that defined its scale in
``scale_run_id`` (itself for 'initial' and 'none'). The bank's CURRENT scale is that of its
latest completed run. An item's current bank value is its latest completed parameter row, if
that row is on the current scale: an item last calibrated before a scale reset has no value on
the new scale (it is calibrated as a new item, not used as an anchor). Runs completed before
migration 0005 have no ``scale_run_id``: each counts as defining its own scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import psycopg

from irt_pipeline.storage._ids import parse_uuid

_CURRENT_SCALE = """
SELECT coalesce(scale_run_id, id)
FROM irt_calibration_runs
WHERE item_bank = %(bank)s AND status = 'completed'
ORDER BY completed_at DESC, started_at DESC
LIMIT 1
"""

_VALUES_ON_SCALE = """
SELECT l.item_id::text AS item_id, l.a, l.b, l.c
FROM irt_item_parameters_latest l
JOIN irt_calibration_runs r ON r.id = l.calibration_run_id
WHERE l.item_id = ANY(%(items)s::uuid[]) AND coalesce(r.scale_run_id, r.id) = %(scale)s
ORDER BY l.item_id
"""


@dataclass(frozen=True)
class BankScale:
    """The bank's current scale and the current values of the asked items on it."""

    scale_run_id: str | None   # None: the bank has no completed run (this run defines the scale)
    values: pd.DataFrame       # item_id, a, b, c of the asked items that have a value on it

    @property
    def exists(self) -> bool:
        return self.scale_run_id is not None


def current_scale_run(conn: psycopg.Connection, item_bank: str) -> str | None:
    """The run that defined the bank's current scale, or None for a bank without a completed run."""
    row = conn.execute(_CURRENT_SCALE, {"bank": item_bank}).fetchone()
    return None if row is None else str(row[0])


def bank_scale(conn: psycopg.Connection, item_bank: str, item_ids: Sequence[str]) -> BankScale:
    """The bank's current scale and the values of `item_ids` on it (one snapshot)."""
    with conn.transaction():
        scale = current_scale_run(conn, item_bank)
        if scale is None:
            return BankScale(None, pd.DataFrame({"item_id": [], "a": [], "b": [], "c": []}))
        items = [parse_uuid(item, "item id") for item in item_ids]
        with conn.cursor() as cur:
            rows = cur.execute(_VALUES_ON_SCALE, {"items": items, "scale": scale}).fetchall()
    values = pd.DataFrame(rows, columns=["item_id", "a", "b", "c"])
    return BankScale(scale, values.astype({"a": float, "b": float, "c": float}))
