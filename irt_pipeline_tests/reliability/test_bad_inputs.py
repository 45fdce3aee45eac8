"""The catalogue of bad inputs (issue 5, point 3; README "Guarantees"), one test per entry.

Each ends in its documented outcome: the database refusing the row, a documented handling, or a
coded error naming the item or field, with nothing written (no parameter row; an audit row only
where the catalogue says `failed`). Never a traceback from inside numpy or pandas.
"""

from __future__ import annotations

import math

import dagster as dg
import numpy as np
import psycopg
import pytest

from irt_pipeline.defs.resources import RESOURCE_KEY, IrtDatabase
from irt_pipeline_tests.brief_fixtures import item_uuid, student_uuid
from irt_pipeline_tests.defs.conftest import (
    add_bank_partition,
    failure_text,
    insert_attempts,
    insert_items,
    load_matrix,
    parameter_rows,
    query,
    run_job,
    runs,
)
from irt_pipeline_tests.reliability.conftest import calibrate, load_simulated_bank

pytestmark = pytest.mark.db

BANK = "bank-bad"
T0 = "2026-01-05T10:00:00Z"


def first_line(err: str) -> str:
    return err.splitlines()[0] if err else ""


def assert_clean_error(text: str, code: str) -> None:
    """A coded message, not a stack trace from the numeric libraries."""
    assert text.startswith(f"{code}: "), text
    for marker in ("Traceback", "numpy", "pandas", "scipy", "File \""):
        assert marker not in text, text


def assert_failed_insufficient(database_url: str, bank: str, code: int, err: str) -> dict:
    assert code == 3, err
    assert_clean_error(first_line(err), "INSUFFICIENT_DATA")
    (row,) = runs(database_url, bank)
    assert row["status"] == "failed" and row["error"] == first_line(err)
    assert parameter_rows(database_url) == []
    return row


def completed_rows(database_url: str, bank: str) -> list[dict]:
    (row,) = runs(database_url, bank)
    assert row["status"] == "completed", row
    return query(database_url, "SELECT * FROM irt_item_parameters WHERE calibration_run_id = %s", [row["id"]])


def assert_in_bounds(rows: list[dict]) -> None:
    for r in rows:
        assert 0.2 <= r["a"] <= 3 and -6 <= r["b"] <= 6 and 0 <= r["c"] <= 0.35
        assert all(math.isfinite(r[k]) and r[k] > 0 for k in ("a_se", "b_se", "c_se", "infit_mnsq", "outfit_mnsq"))


# -- attempts that the schema cannot hold ---------------------------------------------------


def test_null_correct_or_student_is_refused_by_the_database(database_url):
    insert_items(database_url, BANK, ["i1"])
    with psycopg.connect(database_url) as conn:
        for column, values in (("correct", (student_uuid("s1"), item_uuid("i1"), None)),
                               ("student_id", (None, item_uuid("i1"), True))):
            with pytest.raises(psycopg.errors.NotNullViolation) as refused:
                conn.execute("INSERT INTO student_attempts (student_id, item_id, correct) VALUES (%s, %s, %s)", values)
            assert refused.value.diag.column_name == column
            conn.rollback()
    assert query(database_url, "SELECT count(*) AS n FROM student_attempts") == [{"n": 0}]


def test_attempts_on_items_missing_from_items_are_refused_by_the_database(database_url):
    with psycopg.connect(database_url) as conn:
        with pytest.raises(psycopg.errors.ForeignKeyViolation) as refused:
            conn.execute("INSERT INTO student_attempts (student_id, item_id, correct) VALUES (%s, %s, true)",
                         (student_uuid("s1"), item_uuid("nowhere")))
    assert refused.value.diag.constraint_name == "student_attempts_item_id_fkey"


def test_where_the_schema_allows_them_ungraded_and_orphan_attempts_are_left_out(database_url, instance):
    """The exam import owns student_attempts on Supabase: if its table lacks our NOT NULLs or the
    foreign key, attempts without a grade or a student, and attempts on unknown items, are not
    responses. They are left out: the first graded attempt of each student counts."""
    with psycopg.connect(database_url) as conn:
        conn.execute("ALTER TABLE student_attempts ALTER COLUMN correct DROP NOT NULL,"
                     " ALTER COLUMN student_id DROP NOT NULL,"
                     " DROP CONSTRAINT student_attempts_item_id_fkey")
    names = load_simulated_bank(database_url, BANK, n_students=150, n_items=3)
    students = [student_uuid(f"{BANK}-student-{i:05d}") for i in range(150)]
    with psycopg.connect(database_url) as conn, conn.cursor() as cur:
        cur.executemany(  # an ungraded attempt BEFORE each graded one, and a few with no student
            "INSERT INTO student_attempts (student_id, item_id, correct, attempted_at) VALUES (%s, %s, %s, %s)",
            [(s, item_uuid(names[0]), None, "2026-01-01T00:00:00Z") for s in students]
            + [(None, item_uuid(names[1]), True, T0) for _ in range(30)]
            + [(s, item_uuid("not-an-item-of-any-bank"), True, T0) for s in students[:120]],
        )
    code, _, err = calibrate(database_url, instance, BANK)
    assert code == 0, err
    rows = completed_rows(database_url, BANK)
    assert sorted(r["response_count"] for r in rows) == [150, 150, 150]
    assert {str(r["item_id"]) for r in rows} == {item_uuid(n) for n in names}
    assert_in_bounds(rows)


# -- attempts the pipeline must handle ------------------------------------------------------


def test_duplicate_attempts_count_once_the_first_one(database_url, instance):
    """Each student answers each item three times (exact duplicates at the same instant, then a
    later opposite answer): response_count is the number of students, and the estimates equal
    those of the same bank without the repeats."""
    rng = np.random.default_rng(8)
    responses = (rng.random((150, 4)) < np.array([0.3, 0.5, 0.6, 0.8])).astype(float)
    students = [f"dup-student-{i:03d}" for i in range(150)]
    load_matrix(database_url, "clean", responses, [f"clean-{j}" for j in range(4)], students)
    load_matrix(database_url, "dups", responses, [f"dups-{j}" for j in range(4)], students)
    repeats = [
        (student_uuid(students[i]), item_uuid(f"dups-{j}"), bool(responses[i, j]) if k == 0 else not responses[i, j],
         T0 if k == 0 else "2026-01-06T10:00:00Z")
        for i in range(150) for j in range(4) for k in (0, 1)
    ]
    insert_attempts(database_url, repeats)
    assert query(database_url, "SELECT count(*) AS n FROM student_attempts") == [{"n": 150 * 4 * 4}]
    for bank in ("clean", "dups"):
        code, _, err = calibrate(database_url, instance, bank)
        assert code == 0, err
    clean = sorted(completed_rows(database_url, "clean"), key=lambda r: r["b"])
    dups = sorted(completed_rows(database_url, "dups"), key=lambda r: r["b"])
    assert [r["response_count"] for r in dups] == [150] * 4
    for a, b in zip(clean, dups):
        for key in ("a", "b", "c", "a_se", "b_se", "c_se", "infit_mnsq", "outfit_mnsq"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key


def test_a_bank_without_items_is_refused_by_the_cli_and_fails_insufficient_in_a_run(
    database_url, instance, calibration_job
):
    load_simulated_bank(database_url, "other", n_students=120, n_items=2)
    code, out, err = calibrate(database_url, instance, "empty-bank")
    assert code == 2 and out == ""
    assert_clean_error(first_line(err), "VALIDATION_ERROR")
    assert first_line(err).startswith("VALIDATION_ERROR: bank: item bank 'empty-bank' has no items")
    assert runs(database_url) == [] and instance.get_runs() == []

    # launched as a partition anyway (UI, API): INSUFFICIENT_DATA, a failed audit row
    result = run_job(calibration_job, instance, database_url, "empty-bank")
    assert not result.success
    (row,) = runs(database_url, "empty-bank")
    assert row["status"] == "failed"
    assert_clean_error(row["error"], "INSUFFICIENT_DATA")
    assert "no items" in row["error"]
    assert parameter_rows(database_url) == []


def test_a_bank_with_items_but_no_attempts_fails_insufficient(database_url, instance):
    insert_items(database_url, BANK, ["q1", "q2"])
    code, _, err = calibrate(database_url, instance, BANK)
    row = assert_failed_insufficient(database_url, BANK, code, err)
    assert "insufficient_responses': 2" in row["error"]


def test_every_item_below_min_responses_fails_insufficient_naming_the_threshold(database_url, instance):
    load_simulated_bank(database_url, BANK, n_students=60, n_items=3)
    code, _, err = calibrate(database_url, instance, BANK)
    row = assert_failed_insufficient(database_url, BANK, code, err)
    assert "at least 100 responses" in row["error"] and "insufficient_responses': 3" in row["error"]
    assert row["config"]["min_responses"] == 100


def test_all_correct_and_all_incorrect_items_are_skipped_as_no_variance(database_url, instance):
    rng = np.random.default_rng(4)
    good = (rng.random((150, 3)) < 0.6).astype(float)
    matrix = np.column_stack([good, np.ones(150), np.zeros(150)])
    names = ["g1", "g2", "g3", "all-correct", "all-incorrect"]
    load_matrix(database_url, BANK, matrix, names)
    code, out, err = calibrate(database_url, instance, BANK)
    assert code == 0, err
    assert "items_skipped: 2 (no_variance: 2)" in out
    rows = completed_rows(database_url, BANK)
    assert {str(r["item_id"]) for r in rows} == {item_uuid(n) for n in names[:3]}
    assert_in_bounds(rows)


def test_a_bank_of_only_constant_items_fails_insufficient(database_url, instance):
    load_matrix(database_url, BANK, np.column_stack([np.ones(150), np.zeros(150)]), ["up", "down"])
    code, _, err = calibrate(database_url, instance, BANK)
    row = assert_failed_insufficient(database_url, BANK, code, err)
    assert "no_variance': 2" in row["error"]


def test_one_student_fails_insufficient_whatever_min_responses(database_url, instance):
    load_matrix(database_url, BANK, np.array([[1.0, 0.0, 1.0]]), ["o1", "o2", "o3"])
    code, _, err = calibrate(database_url, instance, BANK)
    assert_failed_insufficient(database_url, BANK, code, err)
    # with min_responses=1 every item has one response: no variance, still nothing to calibrate
    with psycopg.connect(database_url) as conn:
        conn.execute("DELETE FROM irt_calibration_runs")
    code, _, err = calibrate(database_url, instance, BANK, min_responses=1)
    row = assert_failed_insufficient(database_url, BANK, code, err)
    assert "no_variance': 3" in row["error"]


def test_one_item_calibrates(database_url, instance):
    (name,) = load_simulated_bank(database_url, BANK, n_students=200, n_items=1)
    code, out, err = calibrate(database_url, instance, BANK)
    assert code == 0, err
    (row,) = completed_rows(database_url, BANK)
    assert str(row["item_id"]) == item_uuid(name) and row["response_count"] == 200
    assert_in_bounds([row])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_fifty_thousand_items_by_twenty_students_fails_insufficient_by_default(database_url, instance):
    """20 responses per item < the default min_responses (100): every item is skipped."""
    with psycopg.connect(database_url) as conn:
        # the two secondary indexes only speed up reads; without them the million-row insert
        # takes a third of the time (the pipeline's read is then a sequential scan)
        conn.execute("DROP INDEX idx_student_attempts_first, idx_student_attempts_item_id")
        conn.execute("INSERT INTO items (id, item_bank) SELECT gen_random_uuid(), %s FROM generate_series(1, 50000)",
                     (BANK,))
        conn.execute(
            "INSERT INTO student_attempts (student_id, item_id, correct, attempted_at)"
            " SELECT s.id, i.id, random() < 0.6, %s FROM items i"
            " CROSS JOIN (SELECT gen_random_uuid() AS id FROM generate_series(1, 20)) s", (T0,))
    code, _, err = calibrate(database_url, instance, BANK)
    row = assert_failed_insufficient(database_url, BANK, code, err)
    assert "insufficient_responses': 50000" in row["error"]


def test_many_items_few_students_calibrates_with_a_low_min_responses(database_url, instance):
    """The same shape scaled down (5,000 items x 20 students) through the whole pipeline with
    min_responses=20: every item with both answers is calibrated, in bounds, one row each."""
    rng = np.random.default_rng(12)
    responses = (rng.random((20, 5000)) < 0.6).astype(float)
    load_matrix(database_url, BANK, responses, [f"w{j:05d}" for j in range(5000)])
    varied = int(np.sum((responses.min(axis=0) == 0) & (responses.max(axis=0) == 1)))
    code, out, err = calibrate(database_url, instance, BANK, min_responses=20, max_iterations=2)
    assert code == 0, err
    assert "convergence_achieved: false" in out and "iterations_used: 2" in out
    rows = completed_rows(database_url, BANK)
    assert len(rows) == varied and {r["response_count"] for r in rows} == {20}
    assert_in_bounds(rows)


# -- config -----------------------------------------------------------------------------------

OUT_OF_RANGE = [
    ("min_responses", 0), ("min_responses", -5),
    ("max_iterations", 0), ("max_iterations", 501), ("max_iterations", -1),
    ("convergence_threshold", 0.0), ("convergence_threshold", 1.0), ("convergence_threshold", -0.001),
    ("convergence_threshold", 1.5), ("convergence_threshold", float("nan")), ("convergence_threshold", float("inf")),
    ("item_ids", []),
]


@pytest.mark.parametrize(("field", "value"), OUT_OF_RANGE)
def test_out_of_range_config_is_refused_by_the_cli_before_anything(database_url, instance, field, value):
    load_simulated_bank(database_url, BANK, n_students=120, n_items=2)
    code, out, err = calibrate(database_url, instance, BANK, **{field: value})
    assert code == 2 and out == ""
    assert_clean_error(first_line(err), "VALIDATION_ERROR")
    assert first_line(err).startswith(f"VALIDATION_ERROR: {field}: ")
    assert runs(database_url) == [] and instance.get_runs() == []


def test_out_of_range_config_in_a_launched_run_fails_its_first_step_and_writes_nothing(
    database_url, instance, calibration_job
):
    """Launched from the UI, a schedule or a sensor: the range checks run when response_matrix
    starts (Dagster checks only types at launch); no audit row, no parameters."""
    load_simulated_bank(database_url, BANK, n_students=120, n_items=2)
    for field, value in [("min_responses", 0), ("max_iterations", 501), ("convergence_threshold", 1.0)]:
        result = run_job(calibration_job, instance, database_url, BANK, {field: value})
        assert not result.success
        assert [e.step_key for e in result.get_step_failure_events()] == ["response_matrix"]
        assert field in failure_text(result)
    assert runs(database_url) == [] and parameter_rows(database_url) == []


@pytest.mark.parametrize("config", [
    {"min_responses": True}, {"min_responses": "12"}, {"max_iterations": 2.5},
    {"convergence_threshold": "small"}, {"item_ids": "not-a-list"}, {"unknown_field": 1},
])
def test_wrongly_typed_config_is_refused_at_launch(database_url, instance, calibration_job, config):
    load_simulated_bank(database_url, BANK, n_students=120, n_items=2)
    add_bank_partition(instance, BANK)
    with pytest.raises(dg.DagsterInvalidConfigError) as refused:
        calibration_job.execute_in_process(
            instance=instance, partition_key=BANK,
            run_config={"ops": {"response_matrix": {"config": config}}},
            resources={RESOURCE_KEY: IrtDatabase(url=database_url)},
        )
    assert next(iter(config)) in str(refused.value)
    assert runs(database_url) == []


def test_huge_min_responses_is_accepted_and_fails_insufficient(database_url, instance):
    load_simulated_bank(database_url, BANK, n_students=120, n_items=2)
    code, _, err = calibrate(database_url, instance, BANK, min_responses=10**12)
    row = assert_failed_insufficient(database_url, BANK, code, err)
    assert row["config"]["min_responses"] == 10**12


def test_a_tiny_threshold_runs_to_max_iterations_and_publishes_unconverged(database_url, instance):
    load_simulated_bank(database_url, BANK, n_students=150, n_items=3)
    code, out, err = calibrate(database_url, instance, BANK, convergence_threshold=1e-300, max_iterations=7)
    assert code == 0, err
    assert "convergence_achieved: false" in out and "iterations_used: 7" in out
    assert_in_bounds(completed_rows(database_url, BANK))


# -- item_ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [
    "nope", "", "   ", "123", "12345678-1234-5678-1234-56781234567",  # one digit short
    "'; DROP TABLE items; --", "00000000-0000-0000-0000-000000000000' OR '1'='1",
    "1); DELETE FROM irt_calibration_runs; --", "\x00",
])
def test_malformed_or_sql_looking_item_ids_are_refused_naming_the_value(database_url, instance, bad):
    names = load_simulated_bank(database_url, BANK, n_students=120, n_items=2)
    code, out, err = calibrate(database_url, instance, BANK, item_ids=[item_uuid(names[0]), bad])
    assert code == 2 and out == ""
    line = first_line(err)
    assert_clean_error(line, "VALIDATION_ERROR")
    assert line.startswith("VALIDATION_ERROR: item_ids: ") and f"not a UUID: {bad!r}" in line
    assert runs(database_url) == []
    assert query(database_url, "SELECT count(*) AS n FROM items") == [{"n": 2}]


def test_unknown_duplicate_and_differently_spelled_item_ids(database_url, instance):
    """Unknown ids and ids of another bank are skipped as not_in_bank; duplicates and other
    spellings of one UUID (upper case, braces, urn:, no hyphens, spaces) count once."""
    names = load_simulated_bank(database_url, BANK, n_students=150, n_items=3)
    other = load_simulated_bank(database_url, "other-bank", n_students=150, n_items=1)
    first = item_uuid(names[0])
    unknown = "9b2f2d3c-0000-4000-8000-000000000001"
    spelled = [first, first.upper(), "{" + first + "}", "urn:uuid:" + first, first.replace("-", ""), f"  {first} "]
    code, out, err = calibrate(database_url, instance, BANK,
                               item_ids=[*spelled, item_uuid(names[1]), unknown, item_uuid(other[0])])
    assert code == 0, err
    assert "items_skipped: 2 (not_in_bank: 2)" in out
    rows = completed_rows(database_url, BANK)
    assert sorted(str(r["item_id"]) for r in rows) == sorted([first, item_uuid(names[1])])
    (run,) = runs(database_url, BANK)
    assert run["config"]["item_ids"] == [first, item_uuid(names[1]), unknown, item_uuid(other[0])]


def test_only_unknown_item_ids_fail_insufficient(database_url, instance):
    load_simulated_bank(database_url, BANK, n_students=150, n_items=2)
    code, _, err = calibrate(database_url, instance, BANK, item_ids=["9b2f2d3c-0000-4000-8000-000000000001"])
    row = assert_failed_insufficient(database_url, BANK, code, err)
    assert "not_in_bank': 1" in row["error"]


def test_sql_looking_bank_names_are_data(database_url, instance):
    """Bank names travel as query parameters: an unknown one is refused, an existing one with
    quotes and SQL in it calibrates like any other."""
    code, _, err = calibrate(database_url, instance, "x'; DROP TABLE items; --")
    assert code == 2 and first_line(err).startswith("VALIDATION_ERROR: bank: ")
    weird = "o'brien\"; DROP TABLE student_attempts; --"
    load_simulated_bank(database_url, weird, n_students=150, n_items=2)
    code, _, err = calibrate(database_url, instance, weird)
    assert code == 0, err
    assert len(completed_rows(database_url, weird)) == 2
    assert query(database_url, "SELECT count(*) AS n FROM student_attempts") == [{"n": 300}]
