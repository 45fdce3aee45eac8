"""Student abilities (issue 9): `write_abilities` inside the caller's transaction, read back by
run and, per student and bank, from the latest completed run (`irt_student_abilities_latest`)."""

from __future__ import annotations

import math
import uuid

import numpy as np
import pytest

from irt_pipeline import storage
from irt_pipeline.errors import ValidationError
from irt_pipeline.models import IrtStudentAbility
from irt_pipeline.storage.abilities import ABILITY_FIELDS, latest_ability, run_abilities, write_abilities
from irt_pipeline.storage.runs import release_lease
from irt_pipeline_tests.storage.helpers import new_id

pytestmark = pytest.mark.db


def start(conn, bank: str = "bank-a") -> str:
    return storage.start_run(conn, item_bank=bank, config={"model": "3pl"}, dagster_run_id=None)


def complete(conn, run_id: str) -> None:
    """What publish_calibration does to the run row (the abilities are written by the caller)."""
    conn.execute("UPDATE irt_calibration_runs SET status = 'completed', completed_at = now() WHERE id = %s",
                 (run_id,))
    release_lease(conn, run_id)


def write(conn, run_id: str, students, theta, theta_se=None, counts=None, bank: str = "bank-a") -> int:
    n = len(students)
    theta_se = [0.3] * n if theta_se is None else theta_se
    counts = [20] * n if counts is None else counts
    with conn.transaction():
        return write_abilities(conn, run_id, bank, students, theta, theta_se, counts)


def stored(conn, run_id: str) -> list[tuple]:
    return conn.execute(
        "SELECT student_id::text, theta, theta_se, response_count FROM irt_student_abilities"
        " WHERE calibration_run_id = %s ORDER BY student_id", (run_id,)).fetchall()


def test_rows_are_written_with_the_transactions_time(conn):
    run_id = start(conn)
    students = sorted(new_id() for _ in range(3))
    with conn.transaction():
        assert write_abilities(conn, run_id, "bank-a", students, np.array([-1.25, 0.0, 2.5]),
                               np.array([0.41, 0.3, 0.52]), np.array([12, 30, 7])) == 3
        (now,) = conn.execute("SELECT now()").fetchone()
    rows = run_abilities(conn, run_id)
    assert all(isinstance(row, IrtStudentAbility) for row in rows)
    assert [r.model_dump() for r in rows] == [
        {"student_id": s, "item_bank": "bank-a", "theta": t, "theta_se": se, "response_count": k,
         "estimated_at": now, "calibration_run_id": run_id}
        for s, t, se, k in zip(students, (-1.25, 0.0, 2.5), (0.41, 0.3, 0.52), (12, 30, 7))]
    assert tuple(rows[0].model_dump()) == ABILITY_FIELDS == (
        "student_id", "item_bank", "theta", "theta_se", "response_count", "estimated_at", "calibration_run_id")


def test_many_students_round_trip_exactly_in_any_spelling(conn):
    rng = np.random.default_rng(7)
    n = 2_000
    students = [new_id() for _ in range(n)]
    spelled = list(students)
    spelled[3] = spelled[3].upper()                            # other spellings uuid.UUID accepts
    spelled[4] = spelled[4].replace("-", "")
    spelled[5] = "{" + spelled[5] + "}"
    spelled[6] = uuid.UUID(spelled[6])
    theta, se = rng.normal(0.3, 1.1, n), rng.uniform(0.2, 0.9, n)
    counts = rng.integers(1, 400, n)
    run_id = start(conn)
    assert write(conn, run_id, spelled, theta, se, counts.astype(float)) == n
    expected = sorted(zip(students, theta.tolist(), se.tolist(), counts.tolist()))
    assert stored(conn, run_id) == expected                     # binary floats: bit for bit


def test_a_new_attempt_of_the_run_replaces_the_rows_of_the_previous_one(conn):
    run_id, other = start(conn), start(conn, "bank-b")
    first = [new_id() for _ in range(3)]
    write(conn, run_id, first, [0.1, 0.2, 0.3])
    write(conn, other, first, [1.0, 1.0, 1.0], bank="bank-b")
    second = [first[0], new_id()]
    write(conn, run_id, second, [0.7, -0.7])
    assert sorted(r[:2] for r in stored(conn, run_id)) == sorted([(first[0], 0.7), (second[1], -0.7)])
    assert len(stored(conn, other)) == 3                       # other runs untouched
    assert write(conn, run_id, [], []) == 0                     # no students: the old rows go too
    assert stored(conn, run_id) == []


def test_nothing_is_written_when_the_transaction_rolls_back(conn):
    run_id = start(conn)
    with pytest.raises(RuntimeError, match="publication failed"):
        with conn.transaction():
            write_abilities(conn, run_id, "bank-a", [new_id()], [0.5], [0.3], [10])
            raise RuntimeError("publication failed")
    assert stored(conn, run_id) == []


def test_an_autocommit_connection_outside_a_transaction_is_refused(conn):
    run_id = start(conn)
    with pytest.raises(RuntimeError, match="inside the caller's transaction"):
        write_abilities(conn, run_id, "bank-a", [new_id()], [0.5], [0.3], [10])
    assert stored(conn, run_id) == []


S = [f"00000000-0000-4000-8000-00000000000{k}" for k in range(4)]
BAD_INPUTS = [
    # (what changes, message fragments)
    (dict(students=[S[0], "uuid-2", S[2]]), ["student_id is not a UUID: 'uuid-2'"]),
    (dict(students=[S[0], None, S[2]]), ["student_id is not a UUID: None"]),
    (dict(students=[S[0], S[1], S[0].upper()]), [f"student {S[0]} is listed twice"]),
    (dict(theta=[0.0, math.nan, 0.0]), [f"theta is not a finite number for student {S[1]}: nan"]),
    (dict(theta=[0.0, 0.0, -math.inf]), [f"theta is not a finite number for student {S[2]}: -inf"]),
    (dict(theta=[0.0, "high", 0.0]), ["theta holds a value that is not a number"]),
    (dict(theta=[[0.0], [0.0], [0.0]]), ["theta must be one-dimensional"]),
    (dict(theta_se=[0.3, 0.0, 0.3]), [f"theta_se is not a finite number > 0 for student {S[1]}: 0.0"]),
    (dict(theta_se=[-0.3, 0.3, 0.3]), [f"theta_se is not a finite number > 0 for student {S[0]}: -0.3"]),
    (dict(theta_se=[0.3, 0.3, math.inf]), [f"theta_se is not a finite number > 0 for student {S[2]}: inf"]),
    (dict(counts=[5, 0, 5]), [f"response_count is not a whole number >= 1 for student {S[1]}: 0.0"]),
    (dict(counts=[5, 5, 2.5]), [f"response_count is not a whole number >= 1 for student {S[2]}: 2.5"]),
    (dict(counts=[5, 5, 2**31]), [f"response_count is not a whole number >= 1 for student {S[2]}"]),
    (dict(counts=[5, 5, math.nan]), [f"response_count is not a whole number >= 1 for student {S[2]}: nan"]),
    (dict(theta=[0.0, 0.0]), ["differ in length", "student_ids 3", "theta 2", "theta_se 3"]),
    (dict(counts=[5, 5, 5, 5]), ["differ in length", "response_counts 4"]),
    (dict(bank="bank-b"), ["is a run of item bank 'bank-a', not 'bank-b'"]),
    (dict(bank=""), ["item_bank must be a non-empty string"]),
    (dict(run="nope"), ["calibration run id is not a UUID: 'nope'"]),
    (dict(run=S[3]), [f"calibration run {S[3]} does not exist"]),
]


@pytest.mark.parametrize(("change", "fragments"), BAD_INPUTS, ids=[f[0] for _, f in BAD_INPUTS])
def test_bad_input_writes_nothing_and_names_the_problem(conn, change, fragments):
    run_id = start(conn)
    before = [new_id()]
    write(conn, run_id, before, [1.5])                          # a previous attempt's row stays
    args = dict(run=run_id, bank="bank-a", students=S[:3], theta=[0.0, 0.1, 0.2], theta_se=[0.3] * 3,
                counts=[5] * 3)
    args.update(change)
    with pytest.raises(ValidationError) as raised:
        with conn.transaction():
            write_abilities(conn, args["run"], args["bank"], args["students"], args["theta"],
                            args["theta_se"], args["counts"])
    message = str(raised.value)
    assert message.startswith("VALIDATION_ERROR: ")
    for fragment in fragments:
        assert fragment in message
    assert [r[:2] for r in stored(conn, run_id)] == [(before[0], 1.5)]


def test_latest_ability_takes_the_latest_completed_run_of_each_bank(conn):
    student, other = new_id(), new_id()
    first = start(conn)
    write(conn, first, [student, other], [-0.5, 0.9], counts=[10, 11])
    complete(conn, first)
    newest = start(conn)
    write(conn, newest, [student], [0.25], theta_se=[0.2], counts=[40])  # only the first student
    complete(conn, newest)
    in_b = start(conn, "bank-b")
    write(conn, in_b, [student], [2.0], bank="bank-b")
    complete(conn, in_b)
    running = start(conn)                                       # later, but not completed
    write(conn, running, [student, other], [3.0, 3.0])
    storage.fail_run(conn, running, "CALIBRATION_FAILED: test")
    still_running = start(conn)
    write(conn, still_running, [student, other], [4.0, 4.0])

    found = latest_ability(conn, student, "bank-a")
    assert (found.theta, found.theta_se, found.response_count, found.calibration_run_id) == (0.25, 0.2, 40, newest)
    assert (found.student_id, found.item_bank) == (student, "bank-a")
    assert found == next(r for r in run_abilities(conn, newest) if r.student_id == student)
    assert latest_ability(conn, other, "bank-a").calibration_run_id == first  # not re-estimated since
    assert (latest_ability(conn, student, "bank-b").theta, latest_ability(conn, other, "bank-b")) == (2.0, None)
    assert latest_ability(conn, student.upper(), "bank-a") == found
    assert found.model_dump(mode="json")["estimated_at"].endswith("Z")
    assert IrtStudentAbility.model_validate_json(found.model_dump_json()) == found


def test_unknown_and_malformed_ids_are_not_found(conn):
    run_id = start(conn)
    student = new_id()
    write(conn, run_id, [student], [0.0])
    complete(conn, run_id)
    assert latest_ability(conn, student, "bank-a") is not None
    for missing in (new_id(), "uuid-1", "", "00000000-0000-0000-0000-00000000000g"):
        assert latest_ability(conn, missing, "bank-a") is None
    assert latest_ability(conn, student, "no-such-bank") is None
    assert run_abilities(conn, new_id()) == [] and run_abilities(conn, "x") == []


def test_deleting_a_run_deletes_its_abilities(conn):
    run_id = start(conn)
    write(conn, run_id, [new_id()], [0.0])
    release_lease(conn, run_id)
    conn.execute("DELETE FROM irt_calibration_runs WHERE id = %s", (run_id,))
    assert conn.execute("SELECT count(*) FROM irt_student_abilities").fetchone() == (0,)
