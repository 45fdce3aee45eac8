"""GET /api/irt/parameters/:item_id: the latest calibrated parameters of one item, and the
parameter rows of one run, as the brief's `IrtItemParameters`."""

from __future__ import annotations

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from irt_pipeline.models import IrtItemParameters
from irt_pipeline.storage._ids import uuid_or_none

# The brief's IrtItemParameters fields (section 3), in its order.
ITEM_PARAMETER_FIELDS = tuple(IrtItemParameters.model_fields)
_COLUMNS = sql.SQL(", ").join(map(sql.Identifier, ITEM_PARAMETER_FIELDS))


def _model(row: dict) -> IrtItemParameters:
    return IrtItemParameters.model_validate(
        {**row, "item_id": str(row["item_id"]), "calibration_run_id": str(row["calibration_run_id"])}
    )


def latest_parameters(conn: psycopg.Connection, item_id: str) -> IrtItemParameters | None:
    """The item's row of its latest completed calibration, or None (unknown or malformed id)."""
    item = uuid_or_none(item_id)
    if item is None:
        return None
    query = sql.SQL("SELECT {} FROM irt_item_parameters_latest WHERE item_id = %s").format(_COLUMNS)
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(query, (item,)).fetchone()
    return None if row is None else _model(row)


def run_parameters(conn: psycopg.Connection, run_id: str) -> list[IrtItemParameters]:
    """Every parameter row of one calibration run, by item id (empty for an unknown run)."""
    run = uuid_or_none(run_id)
    if run is None:
        return []
    query = sql.SQL("SELECT {} FROM irt_item_parameters WHERE calibration_run_id = %s ORDER BY item_id").format(_COLUMNS)
    with conn.cursor(row_factory=dict_row) as cur:
        return [_model(row) for row in cur.execute(query, (run,))]
