"""Reading the response data: first attempts only, one bank, optional item filter."""

from __future__ import annotations

import pandas as pd
import pytest

from irt_pipeline import storage
from irt_pipeline.errors import ValidationError
from irt_pipeline_tests.storage.helpers import add_attempt, add_items, new_id

pytestmark = pytest.mark.db


def as_set(frame: pd.DataFrame) -> set[tuple[str, str, bool]]:
    return set(frame.itertuples(index=False, name=None))


def test_read_attempts_keeps_each_students_first_attempt(conn):
    i1, i2, i3 = add_items(conn, "bank-a", 3)
    s1, s2 = new_id(), new_id()
    add_attempt(conn, s1, i1, False, minutes=0)
    add_attempt(conn, s1, i1, True, minutes=60)           # a later retake: ignored
    add_attempt(conn, s1, i2, True, minutes=30)           # inserted first (lower id) but later...
    add_attempt(conn, s1, i2, False, minutes=10)          # ...than this one, which counts
    add_attempt(conn, s2, i3, True, minutes=5)            # same attempted_at: the lower id counts
    add_attempt(conn, s2, i3, False, minutes=5)
    add_attempt(conn, s2, i1, True)

    frame = storage.read_attempts(conn, "bank-a")
    assert list(frame.columns) == ["student_id", "item_id", "correct"]
    assert frame["correct"].dtype == bool
    assert pd.api.types.is_string_dtype(frame["student_id"]) and pd.api.types.is_string_dtype(frame["item_id"])
    assert len(frame) == 4
    assert as_set(frame) == {(s1, i1, False), (s1, i2, False), (s2, i3, True), (s2, i1, True)}


def test_read_attempts_is_limited_to_the_bank_and_the_item_filter(conn):
    a1, a2 = add_items(conn, "bank-a", 2)
    (b1,) = add_items(conn, "bank-b", 1)
    student = new_id()
    for item in (a1, a2, b1):
        add_attempt(conn, student, item, True)

    assert set(storage.read_attempts(conn, "bank-a")["item_id"]) == {a1, a2}
    assert set(storage.read_attempts(conn, "bank-b")["item_id"]) == {b1}
    assert set(storage.read_attempts(conn, "bank-a", item_ids=[a2.upper(), b1])["item_id"]) == {a2}
    assert storage.read_attempts(conn, "bank-a", item_ids=[]).empty


def test_read_attempts_of_an_empty_bank_is_an_empty_typed_frame(conn):
    frame = storage.read_attempts(conn, "no-such-bank")
    assert frame.empty and list(frame.columns) == ["student_id", "item_id", "correct"]
    assert frame["correct"].dtype == bool


def test_read_attempts_rejects_malformed_item_ids_by_name(conn):
    (item,) = add_items(conn, "bank-a", 1)
    with pytest.raises(ValidationError) as invalid:
        storage.read_attempts(conn, "bank-a", item_ids=[item, "item-001"])
    assert str(invalid.value) == "VALIDATION_ERROR: item id is not a UUID: 'item-001'"
    with pytest.raises(ValidationError, match="DROP TABLE items"):
        storage.read_attempts(conn, "bank-a", item_ids=["'; DROP TABLE items; --"])
    assert storage.bank_items(conn, "bank-a") == [item]


def test_bank_items_lists_unanswered_items_and_item_banks_lists_banks(conn):
    answered, unanswered = add_items(conn, "bank-a", 2)
    add_items(conn, "bank-b", 1)
    add_attempt(conn, new_id(), answered, True)
    assert storage.bank_items(conn, "bank-a") == sorted([answered, unanswered])
    assert storage.bank_items(conn, "nothing") == []
    assert storage.item_banks(conn) == ["bank-a", "bank-b"]
