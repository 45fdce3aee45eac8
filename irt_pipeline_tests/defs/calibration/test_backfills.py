"""A backfill over several banks, run in process by Dagster's own backfill daemon iteration.

The code location is loaded in process (as the daemon would load it, from
irt_pipeline.definitions); the instance launches runs synchronously in memory, and each run's
steps execute in process (run config) to keep the test quick.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.execution.backfill import BulkActionStatus, PartitionBackfill
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.dagster_run import RunsFilter
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._core.utils import make_new_backfill_id
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget
from dagster._daemon.backfill import execute_backfill_iteration

from irt_pipeline.definitions import defs
from irt_pipeline.defs.calibration.backfills import calibration_backfill_policy
from irt_pipeline.defs.resources import DATABASE_URL_ENV
from irt_pipeline_tests.defs.conftest import add_bank_partition, load_standard_bank, parameter_rows, runs

REPO = Path(__file__).resolve().parents[3]
ASSETS = ["response_matrix", "eligible_items", "item_parameters", "scale_linking", "fit_statistics",
          "student_abilities", "supabase_writes"]
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}


def test_every_asset_of_the_chain_runs_one_bank_per_run():
    graph = defs().resolve_asset_graph()
    for name in ASSETS:
        assert graph.get(dg.AssetKey(name)).backfill_policy == calibration_backfill_policy
    assert calibration_backfill_policy == dg.BackfillPolicy.multi_run(1)


def _workspace(instance: dg.DagsterInstance) -> WorkspaceProcessContext:
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(
            executable_path=sys.executable,
            module_name="irt_pipeline.definitions",
            attribute="defs",
            working_directory=str(REPO),
        ),
        location_name="irt_pipeline",
    )
    return WorkspaceProcessContext(instance, InProcessWorkspaceLoadTarget(origin))


@pytest.mark.db
def test_a_backfill_over_three_banks_materializes_each_in_its_own_run(database_url, monkeypatch):
    banks = ["bank-a", "bank-b", "bank-c"]
    for bank in banks:
        load_standard_bank(database_url, bank=bank, n_students=250, prefix=f"{bank}/")
    monkeypatch.setenv(DATABASE_URL_ENV, database_url)  # the code location's resource reads it

    with dg.instance_for_test(synchronous_run_coordinator=True, synchronous_run_launcher=True) as instance:
        for bank in banks:
            add_bank_partition(instance, bank)
        with _workspace(instance) as workspace:
            backfill = PartitionBackfill.from_asset_partitions(
                backfill_id=make_new_backfill_id(),
                asset_graph=workspace.create_request_context().asset_graph,
                partition_names=banks,
                asset_selection=[dg.AssetKey(name) for name in ASSETS],
                backfill_timestamp=time.time(),
                tags={},
                dynamic_partitions_store=instance,
                all_partitions=False,
                title="three banks",
                description=None,
                run_config=IN_PROCESS,
            )
            instance.add_backfill(backfill)
            logger = logging.getLogger("backfill-test")
            for _ in range(10):
                errors = [e for e in execute_backfill_iteration(workspace, logger) if e is not None]
                assert not errors, errors
                status = instance.get_backfill(backfill.backfill_id).status
                if status not in (BulkActionStatus.REQUESTED, BulkActionStatus.CANCELING):
                    break
            assert status == BulkActionStatus.COMPLETED_SUCCESS

        backfill_runs = instance.get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill.backfill_id}))
        ranges = {r.run_id: (r.tags[RANGE_START], r.tags[RANGE_END]) for r in backfill_runs}
        assert sorted(ranges.values()) == [(bank, bank) for bank in banks]  # one run per bank
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in backfill_runs)
        for run in backfill_runs:
            materialized = instance.get_records_for_run(
                run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
            ).records
            assert sorted(r.event_log_entry.dagster_event.asset_key.path[0] for r in materialized) == sorted(ASSETS)

    run_of_bank = {start: run_id for run_id, (start, _) in ranges.items()}
    for bank in banks:
        (row,) = runs(database_url, bank)  # one audit row per bank, completed by that bank's run
        assert row["status"] == "completed" and row["dagster_run_id"] == run_of_bank[bank]
        assert len(parameter_rows(database_url, row["id"])) == row["items_calibrated"] > 0


def test_the_readme_cli_backfill_queues_one_run_of_the_job_per_bank(tmp_path):
    """`dagster job backfill -w workspace.yaml -j calibration_job --partitions ...` (README)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")  # the local instance (SQLite)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.add_dynamic_partitions("item_bank", ["bank-a", "bank-b"])
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "backfill", "-w", "workspace.yaml",
         "-j", "calibration_job", "--partitions", "bank-a,bank-b", "--noprompt"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with dg.DagsterInstance.from_config(str(home)) as instance:
        queued = instance.get_runs()
        assert sorted(r.tags["dagster/partition"] for r in queued) == ["bank-a", "bank-b"]
        for run in queued:  # waiting for the daemon; the job's tag and hook come with it
            assert run.job_name == "calibration_job" and run.status == dg.DagsterRunStatus.QUEUED
            assert run.tags["dagster/max_runtime"] == "3600" and "dagster/backfill" in run.tags
