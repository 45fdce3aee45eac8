"""The PRODUCTION deploy/dagster.yaml, unchanged, against a real PostgreSQL (the system server in CI).

A fresh test database plays the Supabase database: the data tables in ``public`` and, as
dagster.yaml asks, Dagster's tables in schema ``dagster``. The DAGSTER_PG_* variables point at
it; a run launched through that instance must be found in its run storage (and in the table).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg
import pytest
import yaml
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage
from psycopg.conninfo import conninfo_to_dict

from irt_pipeline.defs.calibration.jobs import MAX_RUNTIME_SECONDS, MAX_RUNTIME_TAG
from irt_pipeline_tests.defs.conftest import failure_text, load_standard_bank, run_job, runs

REPO = Path(__file__).resolve().parents[2]
PROD_YAML = REPO / "deploy" / "dagster.yaml"
LOCAL_YAML = REPO / "dagster.yaml"  # what `dg dev`/`dg check defs` read with DAGSTER_HOME unset
# The run queue's limit in both files: one run in progress per value of each tag that names the
# bank of a run (dagster/partition; the range start of an asset-backfill run, one bank per run).
ONE_RUN_PER_BANK = [
    {"key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
    {"key": "dagster/asset_partition_range_start", "value": {"applyLimitPerUniqueValue": True}, "limit": 1},
]


def point_dagster_at(monkeypatch: pytest.MonkeyPatch, database_url: str, home: Path) -> None:
    """DAGSTER_HOME with a copy of deploy/dagster.yaml, DAGSTER_PG_* from the test database's URL."""
    home.mkdir()
    shutil.copy(PROD_YAML, home / "dagster.yaml")
    info = conninfo_to_dict(database_url)
    host = info.get("host", "")
    if host.startswith("/"):
        # the embedded test server listens on a Unix socket only: an empty host in Dagster's URL
        # makes libpq take the socket folder from PGHOST (production sets a host name)
        monkeypatch.setenv("PGHOST", host)
        host = ""
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("DAGSTER_PG_HOST", host)
    monkeypatch.setenv("DAGSTER_PG_PORT", str(info.get("port") or 5432))
    monkeypatch.setenv("DAGSTER_PG_USER", info.get("user") or "postgres")
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", info.get("password") or "")
    monkeypatch.setenv("DAGSTER_PG_DB", info["dbname"])
    monkeypatch.delenv("PGSSLMODE", raising=False)  # the CI server has no TLS (production: require)


@pytest.mark.db
def test_production_instance_stores_a_run_in_postgres(database_url, calibration_job, tmp_path, monkeypatch):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA dagster")  # the one manual step deploy/dagster.yaml documents
    point_dagster_at(monkeypatch, database_url, tmp_path / "dagster_home")
    bank = load_standard_bank(database_url, n_students=250)

    with dg.DagsterInstance.get() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        queue = instance.get_concurrency_config().run_queue_config
        assert queue.max_concurrent_runs == 4
        assert list(queue.tag_concurrency_limits) == ONE_RUN_PER_BANK
        assert instance.run_coordinator.dequeue_use_threads
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_runtime_seconds == MAX_RUNTIME_SECONDS
        assert not instance.telemetry_enabled
        result = run_job(calibration_job, instance, database_url, bank.name)
        assert result.success, failure_text(result)

    with dg.DagsterInstance.get() as reopened:  # a new process would see the same
        run = reopened.get_run_by_id(result.run_id)
        assert run is not None and run.status == dg.DagsterRunStatus.SUCCESS
        assert run.tags[MAX_RUNTIME_TAG] == str(MAX_RUNTIME_SECONDS)
        assert reopened.get_dynamic_partitions("item_bank") == [bank.name]
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT status FROM dagster.runs WHERE run_id = %s", (result.run_id,)).fetchall()
        in_public = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public' AND table_name = 'runs'"
        ).fetchone()[0]
    assert stored == [("SUCCESS",)] and in_public == 0
    (row,) = runs(database_url, bank.name)
    assert row["status"] == "completed" and row["dagster_run_id"] == result.run_id


def test_the_yaml_files_say_what_the_readme_says():
    prod = yaml.safe_load(PROD_YAML.read_text())
    local = yaml.safe_load(LOCAL_YAML.read_text())
    assert "sslmode" not in PROD_YAML.read_text().split("storage:")[1].split("concurrency:")[0]
    for config in (prod, local):
        # one run per bank (either tag a run of one bank carries), banks side by side; no pool
        assert config["concurrency"]["runs"]["tag_concurrency_limits"] == ONE_RUN_PER_BANK
        assert "pools" not in config["concurrency"]
        assert config["run_queue"]["dequeue_use_threads"] is True  # launches side by side
        assert config["run_monitoring"]["enabled"] is True
        assert config["run_monitoring"]["max_runtime_seconds"] == MAX_RUNTIME_SECONDS
        assert config["telemetry"] == {"enabled": False}
    assert "storage" not in local  # SQLite under DAGSTER_HOME
    assert prod["concurrency"]["runs"]["max_concurrent_runs"] == 4
    assert local["concurrency"]["runs"]["max_concurrent_runs"] == 2


def test_workspace_yaml_loads_the_code_location():
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    assert entry["python_module"]["module_name"] == "irt_pipeline.definitions"
    assert entry["python_module"]["location_name"] == "irt_pipeline"
