"""GET /api/irt/parameters/:item_id: the latest calibrated parameters of one item."""

from __future__ import annotations

from datetime import timezone
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from irt_pipeline.storage._ids import uuid_or_none

# The brief's IrtItemParameters fields (section 3), in its order.
ITEM_PARAMETER_FIELDS = (
    "item_id", "a", "b", "c", "a_se", "b_se", "c_se", "infit_mnsq", "outfit_mnsq",
    "is_flagged", "response_count", "calibrated_at", "calibration_run_id",
)


def latest_parameters(conn: psycopg.Connection, item_id: str) -> dict[str, Any] | None:
    """The item's row of its latest completed calibration, or None (unknown or malformed id).

    Ids are strings and calibrated_at is ISO 8601 in UTC ending in 'Z', as in the brief's JSON.
    """
    item = uuid_or_none(item_id)
    if item is None:
        return None
    query = sql.SQL("SELECT {} FROM irt_item_parameters_latest WHERE item_id = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, ITEM_PARAMETER_FIELDS))
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, (item,)).fetchone()
    if row is None:
        return None
    calibrated_at = row["calibrated_at"].astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return {
        **row,
        "item_id": str(row["item_id"]),
        "calibration_run_id": str(row["calibration_run_id"]),
        "calibrated_at": calibrated_at,
    }
