"""Validation of the parameter rows a calibration publishes (before anything is written)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from irt_pipeline.errors import ValidationError
from irt_pipeline.storage._ids import parse_uuid

FLOAT_COLUMNS = ("a", "b", "c", "a_se", "b_se", "c_se", "infit_mnsq", "outfit_mnsq")
PARAMETER_COLUMNS = ("item_id", *FLOAT_COLUMNS, "is_flagged", "response_count")


def validated_rows(parameters: pd.DataFrame) -> list[tuple]:
    """One tuple per row in PARAMETER_COLUMNS order (item_id as UUID), or ValidationError.

    Checks: every column present; item ids are distinct UUIDs; the float columns and
    response_count are finite numbers (response_count a whole number >= 0); is_flagged is boolean.
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
    flags = parameters["is_flagged"]
    _require(parameters, "is_flagged", item_ids, flags.isin((True, False)).to_numpy(), "is not a boolean")

    return list(zip(
        item_ids,
        *(columns[name].tolist() for name in FLOAT_COLUMNS),
        flags.astype(bool).tolist(),
        counts.astype(np.int64).tolist(),
    ))


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
