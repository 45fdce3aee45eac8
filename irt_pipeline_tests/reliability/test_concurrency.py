"""Concurrency (issue 5, point 5): two runs of one bank launched at once, two banks side by side.

Each launch is a real `irt-pipeline calibrate` process with its own Dagster instance, as two
operators or a sensor and an operator would start them. (Not threads: Dagster reconfigures
Python logging with logging.config.dictConfig when a run starts, which can deadlock against
another thread of the same process that is logging at that moment.) Their EMs are slowed down
(cli_driver.py) so that the runs certainly overlap.

Same bank: exactly one run calibrates and publishes, the other ends with
CALIBRATION_IN_PROGRESS before writing anything; one audit row, one set of parameters.
Different banks: both calibrate at the same time and each publishes exactly what it
publishes alone.
"""

from __future__ import annotations

import time

import dagster as dg
import pytest

from irt_pipeline_tests.defs.conftest import load_standard_bank, parameter_rows, query, runs
from irt_pipeline_tests.reliability.conftest import CliProcess, calibrate, wait_for

pytestmark = [pytest.mark.db, pytest.mark.slow]

ESTIMATES = ("a", "b", "c", "a_se", "b_se", "c_se", "infit_mnsq", "outfit_mnsq", "is_flagged", "response_count")
SLOW_EM = 0.3  # seconds per EM iteration: the standard bank's EM then lasts several seconds


def launch(database_url: str, bank: str, home, processes: list[CliProcess]) -> CliProcess:
    child = CliProcess(["calibrate", "--bank", bank], database_url=database_url, dagster_home=home, slow_em=SLOW_EM)
    processes.append(child)
    return child


def parameters_by_item(database_url: str, run_id) -> dict[str, dict]:
    rows = query(database_url, "SELECT * FROM irt_item_parameters WHERE calibration_run_id = %s", [run_id])
    return {str(r["item_id"]): {k: r[k] for k in ESTIMATES} for r in rows}


@pytest.mark.timeout(300)
def test_two_runs_of_one_bank_at_once_one_calibrates_the_other_is_in_progress(database_url, tmp_path, cli_processes):
    bank = load_standard_bank(database_url)
    children = [launch(database_url, bank.name, tmp_path / f"home-{k}", cli_processes) for k in range(2)]
    codes = [child.wait(timeout=240) for child in children]
    assert sorted(codes) == [0, 4], [child.output()[-3000:] for child in children]
    winner, loser = children if codes[0] == 0 else children[::-1]

    (row,) = runs(database_url, bank.name)  # the loser left no audit row
    assert row["status"] == "completed" and row["items_calibrated"] == len(bank.eligible)
    assert f"calibration_run_id: {row['id']}\n" in "".join(winner.stdout)
    refusal = next(line for line in loser.stderr if line.startswith("CALIBRATION_IN_PROGRESS: "))
    assert f"a calibration of item bank '{bank.name}' is already running (run {row['id']}" in refusal
    assert not loser.saw("EM iteration")  # the loser never calibrated
    rows = parameter_rows(database_url)
    assert len(rows) == len(bank.eligible) and {str(r["item_id"]) for r in rows} == bank.eligible_ids
    assert {r["calibration_run_id"] for r in rows} == {row["id"]}


@pytest.mark.timeout(300)
def test_two_banks_calibrate_side_by_side_and_publish_what_they_publish_alone(database_url, tmp_path, cli_processes):
    bank_a = load_standard_bank(database_url, "bank-a", seed=7, prefix="a-")
    bank_b = load_standard_bank(database_url, "bank-b", n_students=350, seed=21, prefix="b-")
    children = [launch(database_url, bank.name, tmp_path / f"home-{bank.name}", cli_processes)
                for bank in (bank_a, bank_b)]
    # both audit rows running at the same moment: the calibrations overlap
    wait_for(lambda: len(query(database_url, "SELECT 1 FROM irt_calibration_runs WHERE status = 'running'")) == 2,
             180, "both banks to be calibrating at once", interval=0.1)
    codes = [child.wait(timeout=240) for child in children]
    assert codes == [0, 0], [child.output()[-3000:] for child in children]

    side_by_side = {}
    for bank in (bank_a, bank_b):
        (row,) = runs(database_url, bank.name)
        assert row["status"] == "completed" and row["items_calibrated"] == len(bank.eligible)
        side_by_side[bank.name] = parameters_by_item(database_url, row["id"])
        assert set(side_by_side[bank.name]) == bank.eligible_ids
    assert len(parameter_rows(database_url)) == len(bank_a.eligible) + len(bank_b.eligible)

    # each bank again, alone and in this process: the same numbers (nothing leaked between them)
    with dg.instance_for_test() as instance:
        for bank in (bank_a, bank_b):
            time.sleep(0.01)  # distinct started_at
            code, _, err = calibrate(database_url, instance, bank.name)
            assert code == 0, err
            alone = max(runs(database_url, bank.name), key=lambda r: r["started_at"])
            solo = parameters_by_item(database_url, alone["id"])
            assert set(solo) == set(side_by_side[bank.name])
            for item, values in solo.items():
                for key, value in values.items():
                    if value is None:  # no SE at a bound (NULL), alone and side by side
                        assert side_by_side[bank.name][item][key] is None, key
                        continue
                    assert side_by_side[bank.name][item][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    latest = query(database_url, "SELECT item_id::text FROM irt_item_parameters_latest")
    assert sorted(r["item_id"] for r in latest) == sorted(bank_a.eligible_ids | bank_b.eligible_ids)
