"""Validation of the parameter rows a calibration publishes (before anything is written)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from irt_pipeline.errors import ValidationError
from irt_pipeline.storage._ids import parse_uuid

FLOAT_COLUMNS = ("a", "b", "c", "a_se", "b_se", "c_se", "infit_mnsq", "outfit_mnsq")
PARAMETER_COLUMNS = ("item_id", *FLOAT_COLUMNS, "is_flagged", "response_count")
# The bank-scale columns (migration 0005): optional in the frame; absent means "not an anchor,
# no drift measured" (False, False, NULL). b_drift may be NaN (NULL: the item is new to the scale).
LINK_COLUMNS = ("is_anchor", "is_drifted", "b_drift")
WRITTEN_COLUMNS = (*PARAMETER_COLUMNS, *LINK_COLUMNS)


def validated_rows(parameters: pd.DataFrame) -> list[tuple]:
    """One tuple per row in WRITTEN_COLUMNS order (item_id as UUID), or ValidationError.

    Checks: every column of PARAMETER_COLUMNS present; item ids are distinct UUIDs; the float
    columns and response_count are finite numbers (response_count a whole number >= 0);
    is_flagged, is_anchor and is_drifted are booleans; b_drift is finite or NaN (NULL).
    """
    missing = [name for name in PARAMETER_COLUMNS if name not in parameters.columns]
    if missing:
        raise ValidationError(f"parameters lack column(s) {', '.join(missing)}")
    item_ids = [parse_uuid(item_id, "parameters item_id") for item_id in parameters["item_id"]]
    duplicated = pd.Series(item_ids).duplicated()
    if duplicated.any():
        raise ValidationError(f"parameters list item {item_ids[int(np.argmax(duplicated))]} twice")

    columns = {name: _finite(parameters, name, item_ids) for name in (*FLOAT_COLUMNS, "response_count")}
    counts = columns["response_count"]
    _require(parameters, "response_count", item_ids, (counts >= 0) & (counts == np.round(counts)),
             "is not a whole number >= 0")
    flags = {name: _boolean(parameters, name, item_ids) for name in ("is_flagged", "is_anchor", "is_drifted")}
    b_drift = (pd.to_numeric(parameters["b_drift"], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
               if "b_drift" in parameters.columns else np.full(len(parameters), np.nan))
    _require(parameters, "b_drift", item_ids, ~np.isinf(b_drift), "is infinite")

    return list(zip(
        item_ids,
        *(columns[name].tolist() for name in FLOAT_COLUMNS),
        flags["is_flagged"],
        counts.astype(np.int64).tolist(),
        flags["is_anchor"],
        flags["is_drifted"],
        [None if np.isnan(d) else float(d) for d in b_drift],
    ))


def _boolean(parameters: pd.DataFrame, name: str, item_ids: list) -> list[bool]:
    if name not in parameters.columns:  # only the link columns are optional (checked above)
        return [False] * len(parameters)
    values = parameters[name]
    _require(parameters, name, item_ids, values.isin((True, False)).to_numpy(), "is not a boolean")
    return values.astype(bool).tolist()


def _finite(parameters: pd.DataFrame, name: str, item_ids: list) -> np.ndarray:
    values = pd.to_numeric(parameters[name], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    _require(parameters, name, item_ids, np.isfinite(values), "is not a finite number")
    return values


def _require(parameters: pd.DataFrame, name: str, item_ids: list, ok: np.ndarray, problem: str) -> None:
    if not ok.all():
        row = int(np.argmin(ok))
        raise ValidationError(
            f"parameters column {name} {problem} for item {item_ids[row]}: {parameters[name].iloc[row]!r}"
        )
