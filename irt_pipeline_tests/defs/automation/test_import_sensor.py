"""exam_import_sensor against a real database: dg.build_sensor_context, the sensor called directly.

Time is moved by ageing the cursor: `later(cursor, minutes)` is the cursor as the next tick would
find it that many minutes after the previous one (the quiet clock is stored in the cursor).
"""

from __future__ import annotations

import json

import dagster as dg
import pydantic
import pytest

from irt_pipeline.defs.automation.automation_settings import (
    MAX_ATTEMPTS_ENV,
    QUIET_MINUTES_ENV,
    SETTINGS_KEY,
    ExamImportSettings,
    exam_import_settings,
)
from irt_pipeline.definitions import defs
from irt_pipeline.defs.automation.import_cursor import ImportCursor
from irt_pipeline.defs.automation.import_sensor import exam_import_sensor
from irt_pipeline.defs.calibration.jobs import JOB_NAME
from irt_pipeline.defs.resources import RESOURCE_KEY, IrtDatabase
from irt_pipeline_tests.brief_fixtures import item_uuid, student_uuid
from irt_pipeline_tests.defs.conftest import add_bank_partition, insert_attempts, insert_items, query

QUIET = ExamImportSettings(quiet_minutes=10, max_attempts_per_tick=1000)


@pytest.fixture(scope="module")
def definitions() -> dg.Definitions:
    return defs()


def tick(instance, url, cursor=None, settings=QUIET, definitions=None) -> dg.SensorResult:
    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={RESOURCE_KEY: IrtDatabase(url=url), SETTINGS_KEY: settings},
        definitions=definitions,
    )
    return exam_import_sensor(context)


def later(cursor: str, minutes: float) -> str:
    data = json.loads(cursor)
    data["latest_seen_at"] -= 60 * minutes
    return json.dumps(data)


def import_exam(url: str, bank: str, n_items: int = 3, n_students: int = 4, tag: str = "") -> None:
    """An exam import: the bank's items (if new) and every student answering every item."""
    names = [f"{bank}-item-{j}" for j in range(n_items)]
    insert_items(url, bank, names)
    insert_attempts(url, [
        (student_uuid(f"{bank}-{tag}-s{i}"), item_uuid(name), (i + j) % 2 == 0, "2026-01-05T10:00:00Z")
        for i in range(n_students) for j, name in enumerate(names)
    ])


def max_attempt_id(url: str) -> int:
    return query(url, "SELECT coalesce(max(id), 0) AS m FROM student_attempts")[0]["m"]


def added_partitions(result: dg.SensorResult) -> list[str]:
    return [key for request in result.dynamic_partitions_requests for key in request.partition_keys]


@pytest.mark.db
def test_new_import_gives_a_validated_request_once_quiet(database_url, instance, definitions):
    import_exam(database_url, "algebra")
    latest = max_attempt_id(database_url)

    first = tick(instance, database_url, definitions=definitions)
    assert first.run_requests == [] and "still arriving" in first.skip_reason.skip_message
    assert ImportCursor.parse(first.cursor).banks == ("algebra",)

    result = tick(instance, database_url, later(first.cursor, 11), definitions=definitions)
    (request,) = result.run_requests
    assert request.partition_key == "algebra"
    assert request.run_key == f"exam_import:{latest}:algebra"
    assert request.tags["irt/trigger"] == "exam_import"
    assert request.tags["irt/attempts_through_id"] == str(latest)
    job = definitions.resolve_job_def(JOB_NAME)
    config = dg.validate_run_config(job, request.run_config)
    assert config["ops"]["response_matrix"]["config"]["min_responses"] == 100
    assert added_partitions(result) == ["algebra"]
    cursor = ImportCursor.parse(result.cursor)
    assert cursor.handled_id == cursor.scanned_id == latest and cursor.banks == ()


@pytest.mark.db
def test_nothing_new_gives_a_skip_reason_and_an_unchanged_cursor(database_url, instance):
    empty = tick(instance, database_url)
    assert empty.run_requests == [] and empty.cursor is None
    assert empty.skip_reason.skip_message == "no new attempts after id 0"

    import_exam(database_url, "algebra")
    first = tick(instance, database_url)
    done = tick(instance, database_url, later(first.cursor, 11))
    assert len(done.run_requests) == 1

    again = tick(instance, database_url, done.cursor)
    assert again.run_requests == [] and again.dynamic_partitions_requests == []
    assert again.cursor is None  # None: Dagster keeps the previous cursor
    assert again.skip_reason.skip_message == f"no new attempts after id {max_attempt_id(database_url)}"


@pytest.mark.db
def test_two_banks_give_two_requests(database_url, instance):
    import_exam(database_url, "algebra")
    import_exam(database_url, "geometry")
    add_bank_partition(instance, "geometry")  # already known: not added again
    first = tick(instance, database_url)
    result = tick(instance, database_url, later(first.cursor, 11))
    assert [r.partition_key for r in result.run_requests] == ["algebra", "geometry"]
    assert len({r.run_key for r in result.run_requests}) == 2
    assert added_partitions(result) == ["algebra"]


@pytest.mark.db
def test_an_import_still_arriving_gives_no_request_yet(database_url, instance):
    import_exam(database_url, "algebra", tag="part1")
    first = tick(instance, database_url)
    assert first.run_requests == []

    halfway = tick(instance, database_url, later(first.cursor, 4))  # quiet for 4 of 10 minutes
    assert halfway.run_requests == [] and "still arriving" in halfway.skip_reason.skip_message

    import_exam(database_url, "geometry", tag="part2")  # the same import goes on, 11 minutes in
    arriving = tick(instance, database_url, later(halfway.cursor, 11))
    assert arriving.run_requests == [], "new attempts restart the quiet period"
    assert ImportCursor.parse(arriving.cursor).banks == ("algebra", "geometry")

    done = tick(instance, database_url, later(arriving.cursor, 10))
    assert [r.partition_key for r in done.run_requests] == ["algebra", "geometry"]


@pytest.mark.db
def test_a_large_import_is_read_in_bounded_pages(database_url, instance):
    import_exam(database_url, "algebra", n_items=2, n_students=3)   # 6 attempts
    import_exam(database_url, "geometry", n_items=2, n_students=3)  # 6 more, later ids
    latest = max_attempt_id(database_url)
    small_pages = ExamImportSettings(quiet_minutes=0, max_attempts_per_tick=5)
    cursors, cursor = [], None
    for _ in range(2):
        result = tick(instance, database_url, cursor, settings=small_pages)
        assert result.run_requests == [] and "the rest next tick" in result.skip_reason.skip_message
        cursor = result.cursor
        cursors.append(ImportCursor.parse(cursor))
    assert [c.scanned_id for c in cursors] == [latest - 7, latest - 2]
    assert cursors[0].banks == ("algebra",) and cursors[1].banks == ("algebra", "geometry")
    result = tick(instance, database_url, cursor, settings=small_pages)  # the last 2, then quiet
    assert [r.partition_key for r in result.run_requests] == ["algebra", "geometry"]
    assert ImportCursor.parse(result.cursor).handled_id == latest


@pytest.mark.db
def test_quiet_minutes_zero_requests_on_the_first_tick(database_url, instance):
    import_exam(database_url, "algebra")
    result = tick(instance, database_url, settings=ExamImportSettings(quiet_minutes=0))
    assert [r.partition_key for r in result.run_requests] == ["algebra"]


@pytest.mark.db
def test_an_integer_cursor_skips_the_history(database_url, instance):
    import_exam(database_url, "algebra")
    history = max_attempt_id(database_url)
    result = tick(instance, database_url, str(history))
    assert result.cursor is None and result.run_requests == []
    import_exam(database_url, "geometry")
    first = tick(instance, database_url, str(history))
    assert ImportCursor.parse(first.cursor).banks == ("geometry",)


def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv(QUIET_MINUTES_ENV, "3")
    monkeypatch.setenv(MAX_ATTEMPTS_ENV, "5000")
    settings = exam_import_settings()
    assert (settings.quiet_minutes, settings.max_attempts_per_tick) == (3, 5000)
    monkeypatch.setenv(QUIET_MINUTES_ENV, "-1")
    with pytest.raises(pydantic.ValidationError, match="quiet_minutes"):
        exam_import_settings()
    monkeypatch.setenv(QUIET_MINUTES_ENV, "ten")
    with pytest.raises(ValueError, match=QUIET_MINUTES_ENV):
        exam_import_settings()
    monkeypatch.delenv(QUIET_MINUTES_ENV)
    monkeypatch.delenv(MAX_ATTEMPTS_ENV)
    assert exam_import_settings().quiet_minutes == 10


def test_the_sensor_targets_the_job_and_is_off_by_default(definitions):
    sensor = definitions.resolve_sensor_def("exam_import_sensor")
    assert sensor.job_name == JOB_NAME
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert sensor.minimum_interval_seconds == 60


@pytest.mark.parametrize("text", ["{}", "not json", '{"handled_id": 5, "scanned_id": 2, "latest_id": 5, "latest_seen_at": 0}'])
def test_an_unreadable_cursor_fails_the_tick(text):
    with pytest.raises(ValueError, match="unreadable exam_import_sensor cursor"):
        ImportCursor.parse(text)


def test_cursor_round_trip_and_clock():
    cursor = ImportCursor().observe(10, now=100.0).scanned(10, ["b", "a"])
    assert ImportCursor.parse(cursor.serialize()) == cursor
    assert cursor.banks == ("a", "b") and cursor.quiet_for(160.0) == 60.0
    assert cursor.observe(10, now=500.0) is cursor            # same max id: the clock keeps running
    assert cursor.observe(12, now=500.0).latest_seen_at == 500.0
    assert cursor.observe(7, now=500.0).scanned_id == 7       # rows deleted since: rescan from there
    assert cursor.handled() == ImportCursor(10, 10, (), 10, 100.0)
    assert ImportCursor.parse("42") == ImportCursor(42, 42, (), 42, 0.0)
