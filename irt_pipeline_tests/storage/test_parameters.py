"""GET /api/irt/parameters/:item_id: the item's row of its latest completed calibration."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from irt_pipeline import storage
from irt_pipeline.models import IrtItemParameters
from irt_pipeline.storage.parameters import ITEM_PARAMETER_FIELDS
from irt_pipeline_tests.storage.helpers import add_items, new_id, parameter_frame, publish

pytestmark = pytest.mark.db


def run_with(conn, items, a: float) -> str:
    run_id = storage.start_run(conn, item_bank="bank-a", config={"model": "3pl"}, dagster_run_id=None)
    publish(conn, run_id, parameter_frame(items, a=a))
    return run_id


def test_latest_parameters_has_exactly_the_brief_fields(conn):
    items = add_items(conn, "bank-a", 2)
    run_id = run_with(conn, items, a=1.24)
    found = storage.latest_parameters(conn, items[1])
    assert isinstance(found, IrtItemParameters)
    assert tuple(found.model_dump()) == ITEM_PARAMETER_FIELDS == (
        "item_id", "a", "b", "c", "a_se", "b_se", "c_se", "infit_mnsq", "outfit_mnsq",
        "is_flagged", "response_count", "calibrated_at", "calibration_run_id",
        # issue 10 (migration 0008), appended after the brief's fields
        "flag_reasons", "item_status", "item_rest_corr", "q1_statistic", "q1_df", "q1_p_value", "q1_p_adjusted")
    assert found.item_id == items[1] and found.calibration_run_id == run_id
    assert (found.a, found.b, found.c, found.response_count, found.is_flagged) == (1.24, 0.1, 0.2, 150, False)
    assert found.model_dump(mode="json")["calibrated_at"].endswith("Z")
    calibrated_at = found.calibrated_at
    assert calibrated_at.utcoffset().total_seconds() == 0
    assert abs((datetime.now(timezone.utc) - calibrated_at).total_seconds()) < 60


def test_latest_parameters_come_from_the_newest_completed_run(conn):
    items = add_items(conn, "bank-a", 2)
    run_with(conn, items, a=1.0)
    newest = run_with(conn, items[:1], a=2.0)       # recalibrates only the first item
    running = storage.start_run(conn, item_bank="bank-a", config={}, dagster_run_id=None)
    failed = storage.start_run(conn, item_bank="bank-b", config={}, dagster_run_id=None)
    storage.fail_run(conn, failed, "x")
    for run_id in (running, failed):                 # rows of unfinished runs are never served
        conn.execute(
            "INSERT INTO irt_item_parameters (item_id, calibration_run_id, a, b, c, a_se, b_se, c_se,"
            " infit_mnsq, outfit_mnsq, response_count, calibrated_at)"
            " VALUES (%s, %s, 9, 0, 0.2, 1, 1, 1, 1, 1, 100, now() + interval '1 hour')", (items[0], run_id))

    first = storage.latest_parameters(conn, items[0])
    assert (first.a, first.calibration_run_id) == (2.0, newest)
    assert storage.latest_parameters(conn, items[1]).a == 1.0


def test_run_parameters_lists_every_row_of_one_run(conn):
    items = add_items(conn, "bank-a", 3)
    first = run_with(conn, items, a=1.0)
    run_with(conn, items[:1], a=2.0)
    rows = storage.run_parameters(conn, first)
    assert [row.item_id for row in rows] == sorted(items)
    assert {row.calibration_run_id for row in rows} == {first} and {row.a for row in rows} == {1.0}
    assert storage.run_parameters(conn, new_id()) == [] and storage.run_parameters(conn, "x") == []


def test_unknown_or_malformed_item_is_not_found(conn):
    (uncalibrated,) = add_items(conn, "bank-a", 1)
    assert storage.latest_parameters(conn, uncalibrated) is None
    assert storage.latest_parameters(conn, new_id()) is None
    assert storage.latest_parameters(conn, "uuid-1") is None
    assert storage.latest_parameters(conn, "") is None
