"""The code location loads: in Python, and through `dg check defs` as CI/deploys would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from irt_pipeline.defs.calibration.checks import (
    CHECK_EM_CONVERGED,
    CHECK_ITEM_QUALITY,
    CHECK_PARAMETERS_WITHIN_BOUNDS,
    CHECK_ANCHORS_STABLE,
)
from irt_pipeline.definitions import defs

REPO = Path(__file__).resolve().parents[2]
ASSET_NAMES = ["response_matrix", "eligible_items", "item_parameters", "scale_linking", "fit_statistics",
               "student_abilities", "supabase_writes"]


def test_definitions_are_loadable():
    d = defs()
    dg.Definitions.validate_loadable(d)
    assert {k.to_user_string() for k in d.resolve_all_asset_keys()} == set(ASSET_NAMES)


def test_calibration_job_covers_the_chain_and_its_checks():
    d = defs()
    job = d.resolve_job_def("calibration_job")
    assert {h.name for h in job.hook_defs} == {"mark_calibration_failed"}
    graph = d.resolve_asset_graph()
    parents = {name: {k.to_user_string() for k in graph.get(dg.AssetKey(name)).parent_keys} for name in ASSET_NAMES}
    assert parents == {
        "response_matrix": set(),
        "eligible_items": {"response_matrix"},
        "item_parameters": {"eligible_items"},
        "scale_linking": {"item_parameters"},
        "fit_statistics": {"eligible_items", "scale_linking"},
        "student_abilities": {"eligible_items", "scale_linking"},
        "supabase_writes": {"fit_statistics", "student_abilities"},
    }
    check_names = {key.name for key in job.asset_layer.asset_graph.asset_check_keys}
    assert check_names == {CHECK_PARAMETERS_WITHIN_BOUNDS, CHECK_ITEM_QUALITY, CHECK_EM_CONVERGED,
                           CHECK_ANCHORS_STABLE}


def test_every_asset_is_partitioned_by_item_bank_and_documented():
    graph = defs().resolve_asset_graph()
    for name in ASSET_NAMES:
        node = graph.get(dg.AssetKey(name))
        assert node.partitions_def == dg.DynamicPartitionsDefinition(name="item_bank")
        assert node.group_name == "irt"
        assert node.owners and node.kinds and node.description
    # No pool: a pool's limit holds across every bank of the instance (the former
    # "irt_calibration" pool with limit 1 ran a backfill over 40 banks one bank at a time). One run
    # per bank is the run queue's tag concurrency limit (dagster.yaml, test_instance.py,
    # irt_pipeline_tests/deploy/test_parallel_banks.py).
    assert all(not graph.get(dg.AssetKey(name)).pools for name in ASSET_NAMES)


def test_sensors_and_schedules_are_defined():
    d = defs()
    names = {s.name for s in d.sensors}  # a superset check: other modules may add sensors
    assert {"calibration_run_failure_sensor", "calibration_run_canceled_sensor", "exam_import_sensor"} <= names
    assert {s.name for s in d.schedules} == {"weekly_recalibration"}


def test_dg_check_defs_passes(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    env.pop("IRT_DATABASE_URL", None)
    dg_bin = Path(sys.executable).parent / "dg"
    proc = subprocess.run(
        [str(dg_bin), "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr
