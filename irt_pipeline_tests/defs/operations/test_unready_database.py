"""Sensors on a database that is not there yet, or not migrated: `dg dev` on a fresh checkout
starts them before anybody ran `irt-pipeline migrate`. They skip with a reason that says what
to run, and create nothing (before this, the stale-run sensor created the embedded cluster from
the code server and then failed every tick on `relation "irt_calibration_runs" does not exist`)."""

from __future__ import annotations

from types import SimpleNamespace

import dagster as dg
import pytest

from irt_pipeline.defs.automation.automation_settings import SETTINGS_KEY, ExamImportSettings
from irt_pipeline.defs.automation.import_sensor import exam_import_sensor
from irt_pipeline.defs.operations.run_status_sensors import close_audit_rows
from irt_pipeline.defs.operations.stale_runs import stale_calibration_runs_sensor
from irt_pipeline.defs.resources import DATABASE_URL_ENV, RESOURCE_KEY, IrtDatabase
from irt_pipeline.storage import apply_migrations, connect
from irt_pipeline.storage.embedded import HOME_ENV
from irt_pipeline.storage.migrate import migration_files
from irt_pipeline_tests.conftest import fresh_database
from irt_pipeline_tests.defs.conftest import query


def stale_tick(instance, db: IrtDatabase) -> str:
    return stale_calibration_runs_sensor(
        dg.build_sensor_context(instance=instance, resources={RESOURCE_KEY: db})).skip_message


def import_tick(instance, db: IrtDatabase) -> str | None:
    context = dg.build_sensor_context(instance=instance, resources={
        RESOURCE_KEY: db, SETTINGS_KEY: ExamImportSettings(quiet_minutes=10, max_attempts_per_tick=1000)})
    return exam_import_sensor(context).skip_reason.skip_message


def tables(url: str) -> set[str]:
    return {row["tablename"] for row in query(url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}


def test_no_database_yet_skips_and_creates_nothing(instance, tmp_path, monkeypatch):
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    monkeypatch.setenv(HOME_ENV, str(tmp_path))
    db = IrtDatabase()
    for message in (stale_tick(instance, db), import_tick(instance, db)):
        assert message.startswith("no database yet: run `irt-pipeline migrate`")
    assert not (tmp_path / ".irt").exists()


def test_an_unmigrated_database_skips_until_migrated(instance, pg_server_url):
    with fresh_database(pg_server_url, migrate=False) as url:
        db = IrtDatabase(url=url)
        first = migration_files()[0][0]
        for message in (stale_tick(instance, db), import_tick(instance, db)):
            assert f"the database is not migrated ({len(migration_files())} migration(s) pending, from {first})" in message
            assert "irt-pipeline migrate" in message
        assert tables(url) == set()  # the check is read-only
        with connect(url) as conn:
            apply_migrations(conn)
        assert stale_tick(instance, db) == "no stale calibration run"
        assert import_tick(instance, db) == "no new attempts after id 0"


def test_a_database_behind_the_code_names_the_missing_migration(instance, database_url):
    last = migration_files()[-1][0]
    query(database_url, "DELETE FROM irt_schema_migrations WHERE name = %s RETURNING name", [last])
    assert stale_tick(instance, IrtDatabase(url=database_url)).startswith(
        f"the database is not migrated (1 migration(s) pending, from {last})")


@pytest.mark.parametrize("migrated", [False, True])
def test_run_status_sensors_leave_an_unready_database_alone(pg_server_url, migrated):
    logged: list[str] = []
    context = SimpleNamespace(dagster_run=SimpleNamespace(run_id="r-1"), log=SimpleNamespace(info=logged.append))
    with fresh_database(pg_server_url, migrate=migrated) as url:
        close_audit_rows(context, IrtDatabase(url=url), "CALIBRATION_FAILED: test")  # no error either way
    assert any(m.startswith("run r-1 not recorded: the database is not migrated") for m in logged) is not migrated
