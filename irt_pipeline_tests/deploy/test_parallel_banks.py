"""Many banks in parallel, through the daemon's run queue on the production instance
(deploy/dagster.yaml, dagster-postgres): one run per bank at a time, banks side by side.

The limits are run-tag concurrency limits with one slot per tag value: ``dagster/partition`` for
runs of one bank launched as such (launchpad, sensor, schedule, job backfill),
``dagster/asset_partition_range_start`` for the runs of an asset backfill (one bank per run),
under ``max_concurrent_runs: 4``. Runs and backfills are submitted through the webserver, as the
UI submits them. Each run executes its steps in its run worker's process (in_process executor)
to keep the test short; the banks are small (250 students x 23 items), so a run is mostly the run
worker's start and the steps' fixed costs.

One scenario, six runs:
1. an asset backfill over bank-1, bank-2, bank-3 (the asset graph's "Materialize all..."): the
   banks' runs overlap;
2. three runs of bank-1 submitted at once: the queue runs them one after another (the
   ``dagster/partition`` limit), as the former one-slot pool ran every bank;
3. the backfill over the three banks finished faster than the three runs one after another
   (the same work: banks of one size; the runs one after another are recalibrations, linked to
   the bank's scale, the backfill's runs first calibrations).

The limit on ``dagster/asset_partition_range_start`` is the same mechanism on another key (its
values, one bank per backfill run: defs/calibration/test_backfills.py; the configuration: defs/test_instance.py);
a second backfill of one bank is left out to keep the test short.
"""

from __future__ import annotations

import pytest

from irt_pipeline_tests.defs.conftest import load_standard_bank, parameter_rows, runs
from irt_pipeline_tests.deploy.conftest import Topology

CHAIN = ["response_matrix", "eligible_items", "item_parameters", "scale_linking", "fit_statistics",
         "student_abilities", "supabase_writes"]
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
RUN_TIMEOUT = 300
RANGE_START = "dagster/asset_partition_range_start"


def overlap(first: dict, second: dict) -> float:
    """Seconds during which both runs were executing (negative: the gap between them)."""
    return min(first["endTime"], second["endTime"]) - max(first["startTime"], second["startTime"])


def span(group: list[dict]) -> float:
    """From the submission of the first run to the end of the last (queue and launch included)."""
    return max(r["endTime"] for r in group) - min(r["creationTime"] for r in group)


def never_overlap(group: list[dict]) -> bool:
    ordered = sorted(group, key=lambda r: r["startTime"])
    return all(later["startTime"] >= earlier["endTime"] for earlier, later in zip(ordered, ordered[1:]))


def times(group: list[dict]) -> str:
    t0 = min(r["creationTime"] for r in group)
    return ", ".join(f"{r['tags'].get(RANGE_START) or r['tags'].get('dagster/partition')} "
                     f"{r['startTime'] - t0:.1f}-{r['endTime'] - t0:.1f}"
                     for r in sorted(group, key=lambda r: r["startTime"]))


@pytest.mark.db
@pytest.mark.e2e
def test_banks_run_side_by_side_one_run_per_bank_and_a_backfill_beats_one_by_one(topology: Topology):
    banks = ["bank-1", "bank-2", "bank-3"]
    for bank in banks:
        load_standard_bank(topology.data_url, bank=bank, n_students=250, prefix=f"{bank}/")
        topology.add_bank(bank)

    # 1. the three banks as one asset backfill (first in the test: the backfill daemon looks every
    # 30 s from its start, so soon after the topology started it picks the backfill up sooner)
    backfill_id = topology.launch_asset_backfill(banks, CHAIN, IN_PROCESS)
    backfill = topology.wait_for_runs(count=3, timeout=RUN_TIMEOUT, tags={"dagster/backfill": backfill_id})
    assert [r["status"] for r in backfill] == ["SUCCESS"] * 3, topology.log_tails()
    by_bank = {r["tags"][RANGE_START]: r for r in backfill}
    assert sorted(by_bank) == banks
    assert all(r["tags"]["dagster/asset_partition_range_end"] == bank for bank, r in by_bank.items())

    # 2. one bank three times, submitted at once: the queue holds each until the previous ends
    ids = [topology.launch_run("bank-1", IN_PROCESS) for _ in range(3)]
    one_by_one = topology.wait_for_runs(count=3, timeout=RUN_TIMEOUT, run_ids=ids)
    assert [r["status"] for r in one_by_one] == ["SUCCESS"] * 3, topology.log_tails()
    assert never_overlap(one_by_one), times(one_by_one)
    print(f"\none bank three times, one after another: {span(one_by_one):.1f} s ({times(one_by_one)})"
          f"\nthree banks as one backfill: {span(backfill):.1f} s ({times(backfill)})")

    ordered = sorted(backfill, key=lambda r: r["startTime"])
    assert overlap(ordered[0], ordered[1]) > 0 and overlap(ordered[1], ordered[2]) > 0, times(backfill)

    # 3. as fast as the banks allow: faster than three calibrations one after another
    assert span(backfill) < span(one_by_one)

    # the database agrees: every run completed its own audit row, a bank's runs in turn
    of_bank = {bank: [r for r in [*backfill, *one_by_one]
                      if bank in (r["tags"].get("dagster/partition"), r["tags"].get(RANGE_START))] for bank in banks}
    for bank in banks:
        rows = runs(topology.data_url, bank)
        assert [r["dagster_run_id"] for r in rows] == [r["runId"] for r in sorted(of_bank[bank], key=lambda r: r["startTime"])]
        assert all(r["status"] == "completed" for r in rows)
        assert all(a["completed_at"] <= b["started_at"] for a, b in zip(rows, rows[1:]))
        assert len(parameter_rows(topology.data_url, rows[-1]["id"])) == rows[-1]["items_calibrated"] > 0
