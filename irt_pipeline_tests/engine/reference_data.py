"""Loaders for the classic R ``mirt`` reference datasets used as test fixtures.

The data files live in ``datasets/`` next to this module; provenance is in
``datasets/README.md`` and the R mirt reference numbers in
``datasets/MIRT_REFERENCE.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

DATASETS_DIR = Path(__file__).resolve().parent / "datasets"
LSAT7_PATH = DATASETS_DIR / "lsat7.csv"
SAT12_PATH = DATASETS_DIR / "sat12.csv"

#: Scoring key of mirt's SAT12 (R/SAT12.R, ``?SAT12``, ``?key2binary``).
SAT12_KEY = np.array(
    [1, 4, 5, 2, 3, 1, 2, 1, 3, 1, 2, 4, 2, 1, 5, 3, 4, 4, 1, 4, 3, 3, 4, 1, 3, 5, 1, 3, 1, 5, 4, 5]
)
#: Code used for an omitted response in mirt's raw SAT12 data.
SAT12_MISSING_CODE = 8


def load_lsat7() -> np.ndarray:
    """Return LSAT section 7 (Bock & Lieberman, 1970) as a 1000 x 5 float 0/1 matrix.

    Rows are in the order of R ``mirt::expand.table(LSAT7)`` (patterns 00000..11111,
    each repeated by its frequency).
    """
    data = np.loadtxt(LSAT7_PATH, delimiter=",", skiprows=1, dtype=float)
    if data.shape != (1000, 5):
        raise ValueError(f"{LSAT7_PATH} has shape {data.shape}, expected (1000, 5)")
    return data


def score_sat12(
    raw: np.ndarray, missing: Literal["nan", "incorrect"] = "nan"
) -> np.ndarray:
    """Score raw SAT12 choices (1-5, 8 = omitted, or NaN) against ``SAT12_KEY``.

    ``missing="nan"`` reproduces mirt's documented
    ``SAT12[SAT12 == 8] <- NA; key2binary(SAT12, key)`` (score_missing = FALSE keeps NA);
    ``missing="incorrect"`` reproduces plain ``key2binary(SAT12, key)``, where the code 8
    simply does not match the key and is scored 0 (this is what mirt's own tests use).
    """
    raw = np.asarray(raw, dtype=float)
    if raw.ndim != 2 or raw.shape[1] != SAT12_KEY.size:
        raise ValueError(f"expected an (n, {SAT12_KEY.size}) matrix, got {raw.shape}")
    scored = (raw == SAT12_KEY[None, :]).astype(float)
    is_missing = np.isnan(raw) | (raw == SAT12_MISSING_CODE)
    if missing == "nan":
        scored[is_missing] = np.nan
    elif missing != "incorrect":
        raise ValueError("missing must be 'nan' or 'incorrect'")
    return scored


def load_sat12_raw() -> np.ndarray:
    """Return the raw 600 x 32 SAT12 choices (1-5, 8 = omitted) from ``datasets/sat12.csv``.

    The file is not shipped (no plain-text copy of mirt's binary ``SAT12`` data was
    available); export it from R with
    ``write.csv(mirt::SAT12, "sat12.csv", row.names = FALSE)``.
    """
    if not SAT12_PATH.exists():
        raise FileNotFoundError(
            f"{SAT12_PATH} is missing: export it from R with "
            'write.csv(mirt::SAT12, "sat12.csv", row.names = FALSE) '
            "(see datasets/README.md)"
        )
    raw = np.loadtxt(SAT12_PATH, delimiter=",", skiprows=1, dtype=float)
    if raw.shape != (600, 32):
        raise ValueError(f"{SAT12_PATH} has shape {raw.shape}, expected (600, 32)")
    return raw


def load_sat12(missing: Literal["nan", "incorrect"] = "nan") -> np.ndarray:
    """Return SAT12 (600 x 32) scored with mirt's key: floats 0/1, omitted as NaN by default.

    See :func:`score_sat12` for the two missing-data conventions. Raises
    ``FileNotFoundError`` while ``datasets/sat12.csv`` is absent.
    """
    return score_sat12(load_sat12_raw(), missing=missing)
