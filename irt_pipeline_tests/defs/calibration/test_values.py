"""Pure helpers of the Dagster layer: matrix building, eligibility, failure messages, bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pydantic
import pytest

from irt_pipeline import errors
from irt_pipeline.defs.calibration.checks import invalid_parameter_rows
from irt_pipeline.defs.calibration.config import CalibrationConfig
from irt_pipeline.defs.calibration.values import build_response_matrix, select_eligible
from irt_pipeline.defs.operations.failures import code_of, coded_message, failure_message
from irt_pipeline_tests.brief_fixtures import SMALL_ITEM_IDS, SMALL_RESPONSE_MATRIX, item_uuid, student_uuid


def _attempts(matrix: np.ndarray) -> pd.DataFrame:
    rows = [
        (student_uuid(f"s{i}"), item_uuid(SMALL_ITEM_IDS[j]), bool(matrix[i, j]))
        for i in range(matrix.shape[0]) for j in range(matrix.shape[1])
    ]
    return pd.DataFrame(rows, columns=["student_id", "item_id", "correct"])


def test_response_matrix_uses_the_signed_encoding_and_keeps_unanswered_items():
    attempts = _attempts(SMALL_RESPONSE_MATRIX)
    extra = item_uuid("nobody-answered")
    bank_items = [item_uuid(n) for n in SMALL_ITEM_IDS] + [extra]
    rm = build_response_matrix(attempts, bank_items, item_bank="b", settings=CalibrationConfig().settings())
    assert rm.matrix.shape == (10, 6)
    assert rm.n_responses == 50
    assert set(np.unique(rm.matrix.data)) == {-1.0, 1.0}
    assert rm.unanswered_item_ids == (extra,)
    dense = rm.matrix.toarray()
    for j, name in enumerate(SMALL_ITEM_IDS):
        col = rm.item_ids.index(item_uuid(name))
        assert (dense[:, col] > 0).sum() == SMALL_RESPONSE_MATRIX[:, j].sum()
    assert rm.density == pytest.approx(50 / 60)


def test_repeated_attempts_count_once_first_wins():
    attempts = pd.DataFrame(
        [("s1", "i1", False), ("s1", "i1", True), ("s2", "i1", True)],
        columns=["student_id", "item_id", "correct"],
    )
    rm = build_response_matrix(attempts, ["i1"], item_bank="b", settings=CalibrationConfig().settings())
    assert rm.n_responses == 2
    assert rm.matrix.toarray().ravel().tolist() == [-1.0, 1.0]


def test_eligibility_filter_threshold_and_variance():
    matrix = SMALL_RESPONSE_MATRIX.copy()
    matrix[:, 4] = 1  # item-005 all correct
    attempts = _attempts(matrix)
    attempts = attempts[~((attempts.item_id == item_uuid("item-002")) & attempts.student_id.isin(
        [student_uuid("s0"), student_uuid("s1")]))]
    unknown = item_uuid("not-in-this-bank")
    settings = CalibrationConfig(
        min_responses=9,
        item_ids=[item_uuid(n) for n in ("item-001", "item-002", "item-005")] + [unknown],
    ).settings()
    rm = build_response_matrix(attempts, [item_uuid(n) for n in SMALL_ITEM_IDS], item_bank="b", settings=settings)
    eligible = select_eligible(rm)
    assert eligible.item_ids == (item_uuid("item-001"),)
    skipped = {(s.item_id, s.reason, s.response_count) for s in eligible.skipped}
    assert skipped == {
        (item_uuid("item-002"), "insufficient_responses", 8),
        (item_uuid("item-005"), "no_variance", 10),
        (unknown, "not_in_bank", 0),
    }
    assert eligible.matrix.shape == (10, 1)
    assert eligible.response_counts.tolist() == [10]


def test_students_without_eligible_responses_are_dropped():
    attempts = pd.DataFrame(
        [("s1", "i1", True), ("s2", "i1", False), ("s3", "i2", True)],
        columns=["student_id", "item_id", "correct"],
    )
    rm = build_response_matrix(attempts, ["i1", "i2"], item_bank="b",
                               settings=CalibrationConfig(min_responses=2).settings())
    eligible = select_eligible(rm)
    assert eligible.item_ids == ("i1",)
    assert eligible.student_ids == ("s1", "s2")


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_responses", 0), ("min_responses", -5), ("max_iterations", 0), ("max_iterations", 501),
     ("convergence_threshold", 0.0), ("convergence_threshold", 1.0), ("item_ids", ["x"]), ("item_ids", [])],
)
def test_config_rejects_out_of_range_values_naming_the_field(field, value):
    with pytest.raises(pydantic.ValidationError) as info:
        CalibrationConfig(**{field: value})
    assert [e["loc"][0] for e in info.value.errors()] == [field]


def test_config_defaults_and_snapshot():
    snap = CalibrationConfig().settings().snapshot()
    assert snap == {"min_responses": 100, "max_iterations": 100, "convergence_threshold": 0.001, "model": "3pl",
                    "linking": "stocking_lord", "se_method": "block",
                    "flags": {"mnsq_lower": 0.7, "mnsq_upper": 1.3, "miskey_item_rest": -0.05,
                              "low_discrimination_item_rest": 0.1, "misfit_fdr": 0.01}}
    assert CalibrationConfig(se_method="full").settings().snapshot()["se_method"] == "full"
    with pytest.raises(pydantic.ValidationError, match="se_method"):
        CalibrationConfig(se_method="sandwich")
    for bad in ({"mnsq_lower": 1.2}, {"mnsq_upper": 0.9}, {"misfit_fdr": 0}, {"miskey_item_rest": 0.2}):
        with pytest.raises(pydantic.ValidationError, match="flags"):
            CalibrationConfig(flags=bad)
    assert CalibrationConfig(linking="none").settings().snapshot()["linking"] == "none"
    with pytest.raises(pydantic.ValidationError, match="linking"):
        CalibrationConfig(linking="mean_sigma")
    upper = "A0000000-0000-4000-8000-00000000000B"
    cfg = CalibrationConfig(item_ids=[upper, upper.lower()])
    assert cfg.item_ids == [upper.lower()]


def test_failure_messages_carry_the_brief_codes():
    assert failure_message("s", errors.InsufficientDataError("x")) == "INSUFFICIENT_DATA: x"
    assert failure_message("item_parameters", ValueError("bad")) == "CALIBRATION_FAILED: item_parameters: ValueError: bad"
    assert code_of("CALIBRATION_IN_PROGRESS: busy") == "CALIBRATION_IN_PROGRESS"
    assert code_of("whatever") == "CALIBRATION_FAILED"
    chain = ["dagster error", "irt_pipeline.errors.CalibrationInProgressError: CALIBRATION_IN_PROGRESS: busy\n"]
    assert coded_message(chain) == "CALIBRATION_IN_PROGRESS: busy"


def test_invalid_parameter_rows_finds_every_problem():
    table = pd.DataFrame(
        {
            "item_id": ["ok", "nan_b", "big_a", "neg_c", "zero_se"],
            "a": [1.0, 1.0, 3.5, 1.0, 1.0],
            "b": [0.0, np.nan, 0.0, 0.0, 0.0],
            "c": [0.2, 0.2, 0.2, -0.1, 0.2],
            "a_se": [0.1] * 5,
            "b_se": [0.1, 0.1, 0.1, 0.1, 0.0],
            "c_se": [0.1] * 5,
            "infit_mnsq": [1.0] * 5,
            "outfit_mnsq": [1.0] * 5,
        }
    )
    bad = {r["item_id"]: r["problems"] for r in invalid_parameter_rows(table)}
    assert bad == {
        "nan_b": "b is not finite",
        "big_a": "a outside [0.2, 3.0]",
        "neg_c": "c outside [0.0, 0.35]",
        "zero_se": "b_se <= 0",
    }


def test_bank_without_attempts_gives_an_empty_matrix_and_no_eligible_item():
    empty = pd.DataFrame({"student_id": [], "item_id": [], "correct": []})
    rm = build_response_matrix(empty, ["i1", "i2"], item_bank="b", settings=CalibrationConfig().settings())
    assert rm.matrix.shape == (0, 2) and rm.n_responses == 0 and rm.density == 0.0
    eligible = select_eligible(rm)
    assert eligible.n_items == 0
    assert [(s.item_id, s.reason, s.response_count) for s in eligible.skipped] == [
        ("i1", "insufficient_responses", 0), ("i2", "insufficient_responses", 0)]
