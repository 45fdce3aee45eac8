"""Validation of the parameter rows a calibration publishes (before anything is written)."""

from __future__ import annotations

from typing import get_args

import numpy as np
import pandas as pd

from irt_pipeline.errors import ValidationError
from irt_pipeline.models import FlagReason, ItemStatus
from irt_pipeline.storage._ids import parse_uuid

FLOAT_COLUMNS = ("a", "b", "c", "a_se", "b_se", "c_se", "infit_mnsq", "outfit_mnsq")
# Standard errors may be NaN (written as NULL: the parameter is at its bound, or the item's
# information is singular; migration 0008), never infinite or negative.
SE_COLUMNS = ("a_se", "b_se", "c_se")
PARAMETER_COLUMNS = ("item_id", *FLOAT_COLUMNS, "is_flagged", "response_count")
# The bank-scale columns (migration 0005): optional in the frame; absent means "not an anchor,
# no drift measured" (False, False, NULL). b_drift may be NaN (NULL: the item is new to the scale).
LINK_COLUMNS = ("is_anchor", "is_drifted", "b_drift")
# The diagnostics (migration 0008): optional. Absent flag_reasons are derived from the mean
# squares at the brief's 0.7-1.3 (what is_flagged meant before); the statistics may be NaN (NULL).
STATISTIC_COLUMNS = ("item_rest_corr", "q1_statistic", "q1_df", "q1_p_value", "q1_p_adjusted")
DIAGNOSTIC_COLUMNS = ("flag_reasons", "item_status", *STATISTIC_COLUMNS)
WRITTEN_COLUMNS = (*PARAMETER_COLUMNS, *LINK_COLUMNS, *DIAGNOSTIC_COLUMNS)
# COPY types of WRITTEN_COLUMNS.
WRITTEN_TYPES = ("uuid", *["float8"] * len(FLOAT_COLUMNS), "bool", "int4", "bool", "bool", "float8",
                 "text[]", "text", *["float8"] * len(STATISTIC_COLUMNS))
KNOWN_REASONS = frozenset(get_args(FlagReason))
KNOWN_STATUSES = frozenset(get_args(ItemStatus))


def validated_rows(parameters: pd.DataFrame) -> list[tuple]:
    """One tuple per row in WRITTEN_COLUMNS order (item_id as UUID, NaN as None), or ValidationError.

    Checks: every column of PARAMETER_COLUMNS present; item ids are distinct UUIDs; a, b, c, the
    mean squares and response_count are finite numbers (response_count a whole number >= 0);
    standard errors are positive or NaN; is_flagged, is_anchor and is_drifted are booleans;
    b_drift and the statistics are finite or NaN; flag_reasons are known reasons and is_flagged
    is true exactly when there is one; item_status is a known status.
    """
    missing = [name for name in PARAMETER_COLUMNS if name not in parameters.columns]
    if missing:
        raise ValidationError(f"parameters lack column(s) {', '.join(missing)}")
    item_ids = [parse_uuid(item_id, "parameters item_id") for item_id in parameters["item_id"]]
    duplicated = pd.Series(item_ids).duplicated()
    if duplicated.any():
        raise ValidationError(f"parameters list item {item_ids[int(np.argmax(duplicated))]} twice")

    finite = [name for name in (*FLOAT_COLUMNS, "response_count") if name not in SE_COLUMNS]
    columns = {name: _finite(parameters, name, item_ids) for name in finite}
    for name in SE_COLUMNS:
        values = _numbers(parameters, name)
        _require(parameters, name, item_ids, np.isnan(values) | (np.isfinite(values) & (values > 0)),
                 "is not a positive number or NaN (NULL)")
        columns[name] = values
    counts = columns["response_count"]
    _require(parameters, "response_count", item_ids, (counts >= 0) & (counts == np.round(counts)),
             "is not a whole number >= 0")
    flags = {name: _boolean(parameters, name, item_ids) for name in ("is_flagged", "is_anchor", "is_drifted")}
    optional = {name: _optional_floats(parameters, name, item_ids) for name in ("b_drift", *STATISTIC_COLUMNS)}
    reasons = _reasons(parameters, item_ids, columns, flags["is_flagged"])
    statuses = (parameters["item_status"].astype(str).tolist() if "item_status" in parameters.columns
                else ["ok"] * len(parameters))
    _require(parameters, "item_status", item_ids, np.array([s in KNOWN_STATUSES for s in statuses], bool),
             f"is not one of {', '.join(sorted(KNOWN_STATUSES))}")

    return list(zip(
        item_ids,
        *(_nullable(columns[name]) for name in FLOAT_COLUMNS),
        flags["is_flagged"],
        counts.astype(np.int64).tolist(),
        flags["is_anchor"],
        flags["is_drifted"],
        optional["b_drift"],
        reasons,
        statuses,
        *(optional[name] for name in STATISTIC_COLUMNS),
    ))


def _reasons(parameters: pd.DataFrame, item_ids: list, columns: dict, is_flagged: list[bool]) -> list[list[str]]:
    if "flag_reasons" in parameters.columns:
        reasons = [list(r) if isinstance(r, (list, tuple, np.ndarray)) else None for r in parameters["flag_reasons"]]
        _require(parameters, "flag_reasons", item_ids, np.array([r is not None for r in reasons], bool),
                 "is not a list of reasons")
    else:
        outside = lambda v: (v < 0.7) | (v > 1.3)  # noqa: E731  (the brief's AC 8)
        infit, outfit = outside(columns["infit_mnsq"]), outside(columns["outfit_mnsq"])
        reasons = [[name for name, on in (("infit", i), ("outfit", o)) if on] for i, o in zip(infit, outfit)]
    known = np.array([set(r) <= KNOWN_REASONS for r in reasons], bool)
    _require(parameters, "flag_reasons", item_ids, known, f"holds a reason not in {', '.join(sorted(KNOWN_REASONS))}")
    agree = np.array([bool(r) == flagged for r, flagged in zip(reasons, is_flagged)], bool)
    if not agree.all():
        row = int(np.argmin(agree))
        raise ValidationError(
            f"parameters row of item {item_ids[row]}: is_flagged is {is_flagged[row]} but flag_reasons is "
            f"{reasons[row]!r} (an item is flagged exactly when it has a reason)"
        )
    return [[str(x) for x in r] for r in reasons]


def _nullable(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def _numbers(parameters: pd.DataFrame, name: str) -> np.ndarray:
    return pd.to_numeric(parameters[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _optional_floats(parameters: pd.DataFrame, name: str, item_ids: list) -> list[float | None]:
    if name not in parameters.columns:
        return [None] * len(parameters)
    values = _numbers(parameters, name)
    _require(parameters, name, item_ids, ~np.isinf(values), "is infinite")
    return _nullable(values)


def _boolean(parameters: pd.DataFrame, name: str, item_ids: list) -> list[bool]:
    if name not in parameters.columns:  # only the link columns are optional (checked above)
        return [False] * len(parameters)
    values = parameters[name]
    _require(parameters, name, item_ids, values.isin((True, False)).to_numpy(), "is not a boolean")
    return values.astype(bool).tolist()


def _finite(parameters: pd.DataFrame, name: str, item_ids: list) -> np.ndarray:
    values = _numbers(parameters, name)
    _require(parameters, name, item_ids, np.isfinite(values), "is not a finite number")
    return values


def _require(parameters: pd.DataFrame, name: str, item_ids: list, ok: np.ndarray, problem: str) -> None:
    if not ok.all():
        row = int(np.argmin(ok))
        value = parameters[name].iloc[row] if name in parameters.columns else None
        raise ValidationError(f"parameters column {name} {problem} for item {item_ids[row]}: {value!r}")
