"""packages/types/src/student/irt.types.ts: generated from the models, fresh, and the brief's
interfaces field for field (the brief's section 3, copied below verbatim), followed only by the
additions of issues 9 and 10 listed in EXTENSIONS (and the nullable SEs of issue 10)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "packages" / "types" / "src" / "student" / "irt.types.ts"

BRIEF_TYPES = """
export interface IrtItemParameters {
  readonly item_id: string;
  readonly a: number;              // discrimination (0.2 - 3.0 typical)
  readonly b: number;              // difficulty (-3.0 to 3.0 typical)
  readonly c: number;              // guessing (0.0 to 0.35 typical)
  readonly a_se: number;           // standard error of a
  readonly b_se: number;           // standard error of b
  readonly c_se: number;           // standard error of c
  readonly infit_mnsq: number;     // infit mean-square statistic
  readonly outfit_mnsq: number;    // outfit mean-square statistic
  readonly is_flagged: boolean;    // true if MNSQ outside 0.7-1.3
  readonly response_count: number; // number of responses used
  readonly calibrated_at: string;  // ISO timestamp
  readonly calibration_run_id: string;
}
export interface IrtCalibrationRequest {
  readonly item_ids?: string[];     // optional filter; if omitted, calibrate all eligible items
  readonly min_responses?: number;  // override minimum (default 100)
  readonly max_iterations?: number; // override max iterations (default 100)
  readonly convergence_threshold?: number; // override threshold (default 0.001)
}
export interface IrtCalibrationResponse {
  readonly calibration_run_id: string;
  readonly items_calibrated: number;
  readonly items_skipped: number;       // below min_responses threshold
  readonly items_flagged: number;       // MNSQ outside acceptable range
  readonly convergence_achieved: boolean;
  readonly iterations_used: number;
  readonly elapsed_seconds: number;
  readonly parameters: IrtItemParameters[];
  readonly skipped_items: IrtSkippedItem[];
}
export interface IrtSkippedItem {
  readonly item_id: string;
  readonly reason: string;           // e.g., "insufficient_responses"
  readonly response_count: number;
}
export interface IrtCalibrationRun {
  readonly id: string;
  readonly started_at: string;
  readonly completed_at: string | null;
  readonly status: "running" | "completed" | "failed";
  readonly items_calibrated: number;
  readonly items_skipped: number;
  readonly items_flagged: number;
  readonly convergence_achieved: boolean;
  readonly iterations_used: number;
  readonly elapsed_seconds: number;
  readonly config: IrtCalibrationConfig;
}
export interface IrtCalibrationConfig {
  readonly min_responses: number;
  readonly max_iterations: number;
  readonly convergence_threshold: number;
  readonly model: "3pl";
}
"""

_INTERFACE = re.compile(r"export interface (\w+)(?:<\w+>)? \{(.*?)\n\}", re.S)
_FIELD = re.compile(r"^\s*(readonly )?(\w+)(\??): ([^;]+);", re.M)


def interfaces(text: str) -> dict[str, list[tuple[bool, str, bool, str]]]:
    """name -> [(readonly, field, optional, type)] in declaration order."""
    return {
        name: [(bool(ro), field, bool(opt), kind.strip()) for ro, field, opt, kind in _FIELD.findall(body)]
        for name, body in _INTERFACE.findall(text)
    }


def _generator():
    spec = importlib.util.spec_from_file_location("generate_types", ROOT / "scripts" / "generate_types.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_checked_in_file_is_what_the_script_generates():
    assert GENERATED.read_text() == _generator().render(), "stale: run `make types`"


# What this project adds to the brief's interfaces (issue 9), after the brief's fields: the
# brief's fields keep their names, types, order and optionality (a compatible extension).
EXTENSIONS = {
    "IrtCalibrationRun": [
        (True, "linking_method", False, '"initial" | "stocking_lord" | "none" | null'),
        (True, "scale_run_id", False, "string | null"),
        (True, "theta_mean", False, "number | null"),
        (True, "theta_sd", False, "number | null"),
        (True, "anchor_items", False, "number"),
        (True, "drifted_items", False, "number"),
        (True, "data_watermark", False, "number | null"),
        (True, "data_read_at", False, "string | null"),
    ],
}
EXTENSIONS["IrtItemParameters"] = [  # issue 10: the item diagnostics (migration 0008)
    (True, "flag_reasons", False, '("infit" | "outfit" | "possible_miskey" | "low_discrimination" | '
                                  '"model_misfit" | "at_bound" | "se_unavailable")[]'),
    (True, "item_status", False, '"ok" | "heywood" | "singular_information" | "all_correct" | "all_incorrect" | '
                                 '"no_responses"'),
    *[(True, name, False, "number | null")
      for name in ("item_rest_corr", "q1_statistic", "q1_df", "q1_p_value", "q1_p_adjusted")],
]
# Issue 10: a parameter at its bound (or an item with singular information) has no standard
# error, so the brief's a_se, b_se and c_se become nullable; nothing else of the brief changes.
NULLABLE = {("IrtItemParameters", name) for name in ("a_se", "b_se", "c_se")}


def test_generated_types_match_the_brief_field_for_field():
    brief, generated = interfaces(BRIEF_TYPES), interfaces(GENERATED.read_text())
    assert len(brief) == 6
    for name, fields in brief.items():
        expected = [(ro, field, opt, f"{kind} | null" if (name, field) in NULLABLE else kind)
                    for ro, field, opt, kind in fields]
        assert generated[name] == expected + EXTENSIONS.get(name, []), name


def test_student_ability_interface():
    assert interfaces(GENERATED.read_text())["IrtStudentAbility"] == [
        (True, "student_id", False, "string"),
        (True, "item_bank", False, "string"),
        (True, "theta", False, "number"),
        (True, "theta_se", False, "number"),
        (True, "response_count", False, "number"),
        (True, "estimated_at", False, "string"),
        (True, "calibration_run_id", False, "string"),
    ]


def test_envelope_and_error_codes_are_exported():
    generated = interfaces(GENERATED.read_text())
    assert generated["IrtEnvelope"] == [(True, "data", False, "T | null"),
                                        (True, "error", False, "IrtApiError | null")]
    assert generated["IrtApiError"] == [(True, "code", False, "IrtErrorCode"), (True, "message", False, "string")]
    codes = re.search(r"export type IrtErrorCode = (.*);", GENERATED.read_text()).group(1)
    assert codes.replace('"', "").split(" | ") == [
        "VALIDATION_ERROR", "INSUFFICIENT_DATA", "CALIBRATION_IN_PROGRESS", "CALIBRATION_FAILED", "ITEM_NOT_FOUND",
        "STUDENT_NOT_FOUND"]


def test_a_changed_model_makes_the_check_fail(monkeypatch):
    from irt_pipeline import models

    generator = _generator()
    monkeypatch.setattr(models, "CONTRACT_MODELS", models.CONTRACT_MODELS[:-1])
    assert generator.render() != GENERATED.read_text()
