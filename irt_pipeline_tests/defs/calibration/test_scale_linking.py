"""One scale per bank, end to end: student_attempts rows -> every asset -> the database.

The two-cohort design of issue 9 (irt_pipeline_tests/engine/two_cohorts.py): cohort 1 answers
items 1-150 and is calibrated (run 1 defines the bank scale); cohort 2, 0.7 logits abler,
answers items 51-200 with a few shared items 1 logit easier for it, and the bank is calibrated
again from every attempt (run 2). The numbers are read back from irt_item_parameters,
irt_calibration_runs and irt_student_abilities and compared with the generating truth; the same
quantities for run 2 left on its own scale (what every run did before linking) are computed in
the test and shown to fail the same limits.
"""

from __future__ import annotations

import io

import numpy as np
import psycopg
import pytest
import scipy.sparse as sp

from irt_pipeline.engine import calibrate_3pl
from irt_pipeline_tests.brief_fixtures import item_uuid, student_uuid
from irt_pipeline_tests.defs.conftest import (
    failure_text,
    insert_items,
    parameter_rows,
    query,
    run_job,
    runs,
)
from irt_pipeline_tests.engine import two_cohorts as tc

pytestmark = pytest.mark.db

BANK = "scale-bank"
ITEM_NAMES = [f"scale-item-{j:03d}" for j in range(tc.N_ITEMS)]
ITEM_IDS = [item_uuid(n) for n in ITEM_NAMES]


def load_signed(url: str, matrix: sp.csr_matrix, items: np.ndarray, students: list[str], at: str) -> None:
    """One attempt per stored cell of a signed CSR matrix (+1 correct, -1 incorrect); column k is
    bank item items[k], row i is student students[i]."""
    coo = matrix.tocoo()
    buf = io.StringIO()
    for i, k, v in zip(coo.row, coo.col, coo.data):
        buf.write(f"{students[i]}\t{ITEM_IDS[items[k]]}\t{'t' if v > 0 else 'f'}\t{at}\n")
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY student_attempts (student_id, item_id, correct, attempted_at) FROM STDIN") as copy:
            copy.write(buf.getvalue())


def by_item(rows: list[dict]) -> dict[str, dict]:
    return {str(r["item_id"]): r for r in rows}


@pytest.fixture(scope="module")
def study(module_database_url, module_instance, calibration_job):
    """Run 1 on cohort 1, then run 2 on every attempt, through calibration_job."""
    url = module_database_url
    sim = tc.simulate(seed=20261130, n1=1200, n2=1200)
    students = [student_uuid(f"scale-student-{i:05d}") for i in range(sim.n1 + sim.theta2.size)]
    insert_items(url, BANK, ITEM_NAMES)
    load_signed(url, sim.cohort1, tc.RUN1_ITEMS, students[: sim.n1], "2026-01-05T10:00:00Z")
    first = run_job(calibration_job, module_instance, url, BANK)
    assert first.success, failure_text(first)
    cohort2 = sim.everyone[sim.n1:, :]
    load_signed(url, cohort2, np.arange(tc.N_ITEMS), students[sim.n1:], "2026-02-05T10:00:00Z")
    second = run_job(calibration_job, module_instance, url, BANK)
    assert second.success, failure_text(second)
    run1, run2 = runs(url, BANK)
    return {
        "url": url, "sim": sim, "students": students, "run1": run1, "run2": run2,
        "params1": by_item(parameter_rows(url, str(run1["id"]))),
        "params2": by_item(parameter_rows(url, str(run2["id"]))),
    }


def test_the_first_run_defines_the_bank_scale(study):
    run1 = study["run1"]
    assert run1["status"] == "completed" and run1["linking_method"] == "initial"
    assert run1["scale_run_id"] == run1["id"]
    assert (run1["theta_mean"], run1["theta_sd"], run1["anchor_items"], run1["drifted_items"]) == (0.0, 1.0, 0, 0)
    assert run1["data_watermark"] > 0 and run1["data_read_at"] is not None
    assert not any(r["is_anchor"] or r["is_drifted"] or r["b_drift"] is not None for r in study["params1"].values())


def test_a_recalibration_is_linked_to_the_bank_scale(study):
    run1, run2, sim = study["run1"], study["run2"], study["sim"]
    assert run2["linking_method"] == "stocking_lord" and run2["scale_run_id"] == run1["id"]
    assert run2["data_watermark"] > run1["data_watermark"]
    params1, params2 = study["params1"], study["params2"]
    # anchor candidates: every item with a run-1 value (items 1-50 too: run 2 re-reads cohort 1)
    shared = [ITEM_IDS[j] for j in tc.RUN1_ITEMS]
    assert run2["anchor_items"] + run2["drifted_items"] == len(shared)
    assert sum(params2[i]["is_anchor"] for i in shared) == run2["anchor_items"]
    for item in shared:  # b_drift is linked b minus the bank value, for every anchor candidate
        assert params2[item]["b_drift"] == pytest.approx(params2[item]["b"] - params1[item]["b"], abs=1e-9)
    for item in (ITEM_IDS[j] for j in tc.NEW):
        row = params2[item]
        assert not row["is_anchor"] and not row["is_drifted"] and row["b_drift"] is None

    steady = [ITEM_IDS[j] for j in sim.steady]
    shift = np.mean([params2[i]["b"] - params1[i]["b"] for i in steady])
    new_b = np.array([params2[ITEM_IDS[j]]["b"] for j in tc.NEW])
    error = new_b - sim.on_run1_scale(sim.b[tc.NEW])
    true_theta = sim.on_run1_scale(np.r_[sim.theta1, sim.theta2])
    # the acceptance limits
    assert abs(shift) <= 0.05
    assert abs(error.mean()) <= 0.12 and np.sqrt(np.mean(error**2)) <= 0.25
    assert abs(run2["theta_mean"] - true_theta.mean()) <= 0.1
    assert abs(run2["theta_sd"] - true_theta.std()) <= 0.1

    # what run 2 scores left on its own scale (no linking), on the same attempts: it fails them
    unlinked = calibrate_3pl(sim.everyone)
    unlinked_shift = np.mean(unlinked.b[sim.steady] - np.array([params1[i]["b"] for i in steady]))
    unlinked_bias = np.mean(unlinked.b[tc.NEW] - sim.on_run1_scale(sim.b[tc.NEW]))
    assert abs(unlinked_shift) > 0.2 and abs(unlinked_bias) > 0.2


def test_drifted_anchors_are_flagged_and_keep_their_new_estimates(study):
    sim, params1, params2 = study["sim"], study["params1"], study["params2"]
    drifted = [ITEM_IDS[j] for j in sim.drifted]
    steady = [ITEM_IDS[j] for j in np.setdiff1d(tc.RUN1_ITEMS, sim.drifted)]
    assert np.mean([params2[i]["is_drifted"] for i in drifted]) >= 0.8
    assert np.mean([params2[i]["is_drifted"] for i in steady]) <= 0.03
    for item in drifted:
        row = params2[item]
        assert row["is_drifted"] != row["is_anchor"]
        if row["is_drifted"]:  # published all the same, easier than the bank value
            assert row["b"] < params1[item]["b"] - 0.1
    assert study["run2"]["drifted_items"] == sum(params2[i]["is_drifted"] for i in params2)


def test_student_abilities_are_on_the_bank_scale(study):
    url, sim, students, run2 = study["url"], study["sim"], study["students"], study["run2"]
    rows = query(url, "SELECT * FROM irt_student_abilities WHERE calibration_run_id = %s", [run2["id"]])
    assert len(rows) == len(students)
    theta = {str(r["student_id"]): r for r in rows}
    estimated = np.array([theta[s]["theta"] for s in students])
    truth = sim.on_run1_scale(np.r_[sim.theta1, sim.theta2])
    n1 = sim.n1
    assert abs(estimated[:n1].mean() - truth[:n1].mean()) <= 0.12
    assert abs(estimated[n1:].mean() - truth[n1:].mean()) <= 0.12
    assert np.corrcoef(estimated, truth)[0, 1] > 0.9
    # the posterior SD is an honest error: close to the empirical RMSE of the EAPs
    se = np.array([theta[s]["theta_se"] for s in students])
    rmse = np.sqrt(np.mean((estimated - truth) ** 2))
    assert 0.7 < np.sqrt(np.mean(se**2)) / rmse < 1.3
    counts = sim.everyone.getnnz(axis=1)
    assert [theta[s]["response_count"] for s in students] == counts.tolist()
    # estimated_at is the publication's transaction time, as calibrated_at
    (row,) = query(url, "SELECT DISTINCT calibrated_at FROM irt_item_parameters WHERE calibration_run_id = %s",
                   [run2["id"]])
    assert {r["estimated_at"] for r in rows} == {row["calibrated_at"]}
    latest = query(url, "SELECT calibration_run_id FROM irt_student_abilities_latest WHERE item_bank = %s", [BANK])
    assert len(latest) == len(students) and {r["calibration_run_id"] for r in latest} == {run2["id"]}


# -- the documented paths -----------------------------------------------------------------------

SMALL_ITEMS = [f"small-item-{j:02d}" for j in range(24)]


def small_bank(url: str, bank: str, seed: int, students: range) -> None:
    """24 well-behaved items, every student answers every item."""
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(0.8, 2.0, 24), rng.normal(0, 1, 24), rng.uniform(0.05, 0.25, 24)
    theta = rng.normal(0, 1, len(students))
    p = c + (1 - c) / (1 + np.exp(-a * (theta[:, None] - b)))
    correct = rng.random(p.shape) < p
    insert_items(url, bank, [f"{bank}-{n}" for n in SMALL_ITEMS])
    buf = io.StringIO()
    for i, s in enumerate(students):
        for j, n in enumerate(SMALL_ITEMS):
            buf.write(f"{student_uuid(f'{bank}-s{s}')}\t{item_uuid(f'{bank}-{n}')}\t{'t' if correct[i, j] else 'f'}"
                      f"\t2026-01-05T10:00:00Z\n")
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY student_attempts (student_id, item_id, correct, attempted_at) FROM STDIN") as copy:
            copy.write(buf.getvalue())


def small_ids(bank: str, names) -> list[str]:
    return [item_uuid(f"{bank}-{n}") for n in names]


def test_linking_none_starts_a_new_scale_and_later_runs_link_to_it(database_url, instance, calibration_job):
    bank = "reset-bank"
    small_bank(database_url, bank, 1, range(600))
    assert run_job(calibration_job, instance, database_url, bank).success
    reset = run_job(calibration_job, instance, database_url, bank, {"linking": "none"})
    assert reset.success, failure_text(reset)
    first, second = runs(database_url, bank)
    assert second["linking_method"] == "none" and second["scale_run_id"] == second["id"] != first["scale_run_id"]
    assert (second["theta_mean"], second["theta_sd"], second["anchor_items"]) == (0.0, 1.0, 0)
    assert second["config"]["linking"] == "none"
    assert not any(r["is_anchor"] for r in parameter_rows(database_url, str(second["id"])))
    logs = [entry.user_message for entry in instance.all_logs(reset.run_id) if entry.step_key == "scale_linking"]
    assert any("starts a NEW scale" in m for m in logs)
    # the next default run links to the new scale, with every item an anchor
    third_run = run_job(calibration_job, instance, database_url, bank)
    assert third_run.success, failure_text(third_run)
    third = runs(database_url, bank)[-1]
    assert third["linking_method"] == "stocking_lord" and third["scale_run_id"] == second["id"]
    assert third["anchor_items"] + third["drifted_items"] == len(SMALL_ITEMS)
    # the same data linked to itself: A = 1, B = 0
    assert third["theta_sd"] == pytest.approx(1.0, abs=1e-3) and third["theta_mean"] == pytest.approx(0.0, abs=1e-3)


def test_too_few_anchors_fails_the_run_and_names_the_way_out(database_url, instance, calibration_job):
    bank = "few-anchors"
    small_bank(database_url, bank, 2, range(600))
    three = small_ids(bank, SMALL_ITEMS[:3])
    assert run_job(calibration_job, instance, database_url, bank, {"item_ids": three}).success
    before = parameter_rows(database_url)
    result = run_job(calibration_job, instance, database_url, bank)
    assert not result.success
    assert [e.step_key for e in result.get_step_failure_events()] == ["scale_linking"]
    text = failure_text(result)
    assert "CALIBRATION_FAILED" in text and "only 3 item(s)" in text and "linking: none" in text
    failed = runs(database_url, bank)[-1]
    assert failed["status"] == "failed" and failed["error"].startswith("CALIBRATION_FAILED: cannot link")
    assert "--linking none" in failed["error"]
    assert parameter_rows(database_url) == before  # nothing published
    assert query(database_url, "SELECT count(*) AS n FROM irt_student_abilities WHERE calibration_run_id = %s",
                 [failed["id"]]) == [{"n": 0}]
    # the way out works
    assert run_job(calibration_job, instance, database_url, bank, {"linking": "none"}).success


def test_a_run_restricted_by_item_ids_links_over_its_own_items(database_url, instance, calibration_job):
    bank = "restricted"
    small_bank(database_url, bank, 3, range(600))
    assert run_job(calibration_job, instance, database_url, bank).success
    ten = small_ids(bank, SMALL_ITEMS[:10])
    result = run_job(calibration_job, instance, database_url, bank, {"item_ids": ten})
    assert result.success, failure_text(result)
    first, second = runs(database_url, bank)
    assert second["linking_method"] == "stocking_lord" and second["scale_run_id"] == first["id"]
    assert second["anchor_items"] + second["drifted_items"] == 10
    assert {str(r["item_id"]) for r in parameter_rows(database_url, str(second["id"]))} == set(ten)
    latest = {str(r["item_id"]): r["calibration_run_id"] for r in query(
        database_url, "SELECT item_id, calibration_run_id FROM irt_item_parameters_latest")}
    assert all(latest[i] == second["id"] for i in ten)
    assert all(latest[i] == first["id"] for i in small_ids(bank, SMALL_ITEMS[10:]))


def test_a_bank_whose_first_run_failed_gets_its_scale_from_the_first_completed_run(
        database_url, instance, calibration_job):
    bank = "failed-first"
    small_bank(database_url, bank, 4, range(600))
    assert not run_job(calibration_job, instance, database_url, bank, {"min_responses": 100_000}).success
    assert run_job(calibration_job, instance, database_url, bank).success
    failed, completed = runs(database_url, bank)
    assert failed["status"] == "failed" and failed["linking_method"] is None
    assert completed["linking_method"] == "initial" and completed["scale_run_id"] == completed["id"]
