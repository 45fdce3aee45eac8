"""What the calibration assets hand each other, and the pure functions that build it.

No Dagster here: these are frozen dataclasses (pickled by the IO manager between steps) and the
matrix/eligibility logic, unit-testable without a run.

Response matrix encoding (the engine's sparse contract): students x items CSR, stored +1.0 =
correct, stored -1.0 = incorrect, absent = not answered. `ResponseMatrix` keeps the same signs as
int8 (compact: a run keeps every step's value in memory, `irt-pipeline calibrate` included);
`EligibleItems`, the engine's input, has them as float64. Repeated attempts of a student on an
item count once: the FIRST attempt (storage.first_attempts reads first attempts only, as integer
codes; a frame given to `build_response_matrix` keeps the first row of each pair).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
import scipy.sparse as sp

from irt_pipeline.defs.calibration.config import LINKING_NONE, CalibrationSettings
from irt_pipeline.engine import BRIEF_BOUNDS, CalibrationResult
from irt_pipeline.engine.abilities import Abilities
from irt_pipeline.engine.linking import ItemSet, Link, link_to_bank, transform_result
from irt_pipeline.engine.quality import ItemQuality
from irt_pipeline.models import IrtSkippedItem
from irt_pipeline.storage.first_attempts import FirstAttempts
from irt_pipeline.storage.runs import ScaleRecord
from irt_pipeline.storage.scale import BankScale

# IrtSkippedItem.reason values.
REASON_INSUFFICIENT_RESPONSES = "insufficient_responses"  # fewer than min_responses responses
REASON_NO_VARIANCE = "no_variance"                        # every response correct, or every one incorrect
REASON_NOT_IN_BANK = "not_in_bank"                        # an item_ids entry that is not an item of the bank


# Columns of the parameter table written to irt_item_parameters (brief section 3 / 4, then
# the bank scale of issue 9 and the diagnostics of issue 10).
PARAMETER_COLUMNS = (
    "item_id", "a", "b", "c", "a_se", "b_se", "c_se",
    "infit_mnsq", "outfit_mnsq", "is_flagged", "response_count",
    "is_anchor", "is_drifted", "b_drift",
    "flag_reasons", "item_status", "item_rest_corr", "q1_statistic", "q1_df", "q1_p_value", "q1_p_adjusted",
)

# ScaleLinking.method values (irt_calibration_runs.linking_method).
METHOD_INITIAL = "initial"              # the bank's first completed run: defines its scale
METHOD_STOCKING_LORD = "stocking_lord"  # linked to the bank scale over anchors
METHOD_NONE = "none"                    # asked for a new scale (config linking: none)


SkippedItem = IrtSkippedItem  # the brief's shape, defined once in irt_pipeline/models.py


@dataclass(frozen=True)
class ResponseMatrix:
    """Every item of one bank (columns, sorted) x every student who answered one (rows, sorted)."""

    item_bank: str
    settings: CalibrationSettings
    matrix: sp.csr_matrix        # signed encoding as int8, see the module docstring
    student_ids: tuple[str, ...]
    item_ids: tuple[str, ...]    # includes the bank's items nobody answered (empty columns)
    data_watermark: int = 0      # highest student_attempts.id of the bank in the read snapshot
    data_read_at: datetime | None = None

    @property
    def n_responses(self) -> int:
        return int(self.matrix.nnz)

    @property
    def response_counts(self) -> np.ndarray:
        return column_counts(self.matrix)

    @property
    def unanswered_item_ids(self) -> tuple[str, ...]:
        counts = self.response_counts
        return tuple(item for item, n in zip(self.item_ids, counts) if n == 0)

    @property
    def density(self) -> float:
        cells = self.matrix.shape[0] * self.matrix.shape[1]
        return float(self.n_responses / cells) if cells else 0.0


@dataclass(frozen=True)
class EligibleItems:
    """The matrix reduced to the items to calibrate, plus the items left out and why."""

    item_bank: str
    settings: CalibrationSettings
    matrix: sp.csr_matrix        # int8 signed; eligible columns only; students without any response dropped
    student_ids: tuple[str, ...]
    item_ids: tuple[str, ...]
    response_counts: np.ndarray  # per eligible item
    skipped: tuple[SkippedItem, ...]
    data_watermark: int = 0
    data_read_at: datetime | None = None

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class ItemParameters:
    """The engine's estimates for the eligible items, under the audit row that was started."""

    calibration_run_id: str
    item_bank: str
    settings: CalibrationSettings
    item_ids: tuple[str, ...]
    result: CalibrationResult
    started_at: float            # time.time() when the audit row was started
    calibration_seconds: float   # wall time of calibrate_3pl


@dataclass(frozen=True)
class ScaleLinking:
    """The calibration on the bank scale: the linked result and how the anchors behaved.

    Per-item arrays follow `item_ids`: is_anchor (used in the link), is_drifted (dropped by the
    drift screen), b_drift (linked b minus the bank value; NaN for items new to the scale),
    displacement (the screened statistic: the shift of the bank b that matches the item's new
    curve for this run's students, engine/linking.py; NaN for new items) and bank_b (the bank
    value, NaN for new items)."""

    calibration_run_id: str
    item_bank: str
    item_ids: tuple[str, ...]
    result: CalibrationResult    # on the bank scale (linking.transform_result)
    record: ScaleRecord          # what the run row says about the scale
    is_anchor: np.ndarray
    is_drifted: np.ndarray
    b_drift: np.ndarray
    displacement: np.ndarray
    bank_b: np.ndarray
    started_at: float

    @property
    def A(self) -> float:
        return self.record.theta_sd

    @property
    def B(self) -> float:
        return self.record.theta_mean

    @property
    def drifted_item_ids(self) -> list[str]:
        return [self.item_ids[j] for j in np.flatnonzero(self.is_drifted)]


@dataclass(frozen=True)
class StudentAbilities:
    """EAP abilities of the run's students on the bank scale, in `student_ids` order."""

    calibration_run_id: str
    item_bank: str
    student_ids: tuple[str, ...]
    abilities: Abilities


@dataclass(frozen=True)
class FitStatistics:
    """Everything `supabase_writes` publishes: one row per calibrated item plus the run summary."""

    calibration_run_id: str
    item_bank: str
    table: pd.DataFrame          # PARAMETER_COLUMNS, one row per calibrated item
    skipped: tuple[SkippedItem, ...]
    convergence_achieved: bool
    iterations_used: int
    log_likelihood: float
    started_at: float
    scale: ScaleRecord | None = None

    @property
    def items_calibrated(self) -> int:
        return int(len(self.table))

    @property
    def items_flagged(self) -> int:
        return int(self.table["is_flagged"].sum())

    @property
    def items_skipped(self) -> int:
        return len(self.skipped)

    @property
    def flagged_item_ids(self) -> list[str]:
        return [str(i) for i in self.table.loc[self.table["is_flagged"], "item_id"]]


def column_counts(matrix: sp.spmatrix) -> np.ndarray:
    """Observed responses per item (stored entries per column)."""
    return np.asarray(matrix.getnnz(axis=0), dtype=np.int64)


def column_correct(matrix: sp.spmatrix) -> np.ndarray:
    """Correct responses per item (stored +1 entries per column), without a copy of the matrix."""
    csr = matrix.tocsr()
    return np.bincount(csr.indices[csr.data > 0], minlength=csr.shape[1]).astype(np.int64)


def build_response_matrix(
    attempts: FirstAttempts | pd.DataFrame,
    bank_item_ids: Iterable[str],
    *,
    item_bank: str,
    settings: CalibrationSettings,
    data_watermark: int = 0,
    data_read_at: datetime | None = None,
) -> ResponseMatrix:
    """CSR response matrix of one bank from its first attempts, straight from their integer
    codes (storage.first_attempts); a frame of student_id, item_id, correct strings is coded
    first (FirstAttempts.from_frame, first row per pair). Columns: the bank's items and any
    answered item, sorted; rows: the students who answered, sorted."""
    first = attempts if isinstance(attempts, FirstAttempts) else FirstAttempts.from_frame(attempts)
    item_ids = tuple(sorted({str(i) for i in bank_item_ids} | set(first.item_ids)))
    if item_ids == first.item_ids:
        columns = first.item
    else:
        position = np.searchsorted(np.asarray(item_ids, dtype=object), np.asarray(first.item_ids, dtype=object))
        columns = position.astype(np.int32)[first.item]
    matrix = _csr(first.indptr, columns, first.correct, (len(first.student_ids), len(item_ids)))
    return ResponseMatrix(
        item_bank=item_bank,
        settings=settings,
        matrix=matrix,
        student_ids=first.student_ids,
        item_ids=item_ids,
        data_watermark=int(data_watermark),
        data_read_at=data_read_at,
    )


def _csr(indptr: np.ndarray, columns: np.ndarray, correct: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    """CSR of int8 +1/-1 entries from the first attempts' row starts and column codes as they are
    (no sort, no COO); the columns must increase within each row (one entry per pair)."""
    if columns.size > 1:
        increasing = columns[1:] > columns[:-1]
        starts = indptr[1:-1]
        increasing[starts[(starts > 0) & (starts < columns.size)] - 1] = True  # a row starts anywhere
        if not increasing.all():
            raise ValueError("first attempts must be sorted by (student, item), one per pair")
    index_dtype = np.int32 if columns.size < np.iinfo(np.int32).max else np.int64
    matrix = sp.csr_matrix(
        (np.where(correct, np.int8(1), np.int8(-1)), columns.astype(index_dtype, copy=False),
         indptr.astype(index_dtype)),
        shape=shape, copy=False,
    )
    matrix.has_sorted_indices = True
    return matrix


def select_eligible(response_matrix: ResponseMatrix) -> EligibleItems:
    """Apply the item_ids filter, then min_responses, then the variance rule (in that order)."""
    settings = response_matrix.settings
    index = {item: j for j, item in enumerate(response_matrix.item_ids)}
    skipped: list[SkippedItem] = []
    if settings.item_ids is None:
        candidates = list(range(len(response_matrix.item_ids)))
    else:
        candidates = []
        for item in settings.item_ids:
            if item in index:
                candidates.append(index[item])
            else:
                skipped.append(SkippedItem(item_id=item, reason=REASON_NOT_IN_BANK, response_count=0))
    counts = response_matrix.response_counts
    correct = column_correct(response_matrix.matrix)
    eligible: list[int] = []
    for j in candidates:
        item, n, k = response_matrix.item_ids[j], int(counts[j]), int(correct[j])
        if n < settings.min_responses:
            skipped.append(SkippedItem(item_id=item, reason=REASON_INSUFFICIENT_RESPONSES, response_count=n))
        elif k == 0 or k == n:
            skipped.append(SkippedItem(item_id=item, reason=REASON_NO_VARIANCE, response_count=n))
        else:
            eligible.append(j)
    reduced, answered = _select_columns(response_matrix.matrix, eligible)
    student_ids = response_matrix.student_ids
    return EligibleItems(
        item_bank=response_matrix.item_bank,
        settings=settings,
        matrix=reduced,
        student_ids=student_ids if len(answered) == len(student_ids) else tuple(student_ids[i] for i in answered),
        item_ids=tuple(response_matrix.item_ids[j] for j in eligible),
        response_counts=counts[eligible].copy(),
        skipped=tuple(skipped),
        data_watermark=response_matrix.data_watermark,
        data_read_at=response_matrix.data_read_at,
    )


def _select_columns(matrix: sp.csr_matrix, columns: Sequence[int]) -> tuple[sp.csr_matrix, np.ndarray]:
    """`matrix[:, columns]` (in that order, its int8 values kept: the engine reads the signed
    encoding in any dtype, chunk by chunk) without its rows left empty, and the rows
    kept: one pass over the entries (an entry's new column, or -1), the result the only copy."""
    position = np.full(matrix.shape[1], -1, dtype=matrix.indices.dtype)
    position[np.asarray(columns, dtype=np.int64)] = np.arange(len(columns), dtype=position.dtype)
    mapped = position[matrix.indices]
    keep = mapped >= 0
    kept_before = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    row_counts = kept_before[matrix.indptr[1:]] - kept_before[matrix.indptr[:-1]]
    del kept_before
    answered = np.flatnonzero(row_counts > 0)
    indptr = np.zeros(len(answered) + 1, dtype=matrix.indptr.dtype)
    np.cumsum(row_counts[answered], out=indptr[1:])
    data = matrix.data[keep]
    reduced = sp.csr_matrix((data, mapped[keep], indptr), shape=(len(answered), len(columns)))
    reduced.sort_indices()    # a no-op unless the item_ids filter listed the items out of order
    return reduced, answered


def link_calibration(item_parameters: ItemParameters, bank: BankScale) -> ScaleLinking:
    """Put the run on the bank scale (engine/linking.py): 'none' when the config asks for a new
    scale, 'initial' when the bank has none yet, else Stocking-Lord over the anchors (the run's
    items with a value on the bank's current scale). Raises linking.LinkingError (too few
    anchors) for the caller to turn into CALIBRATION_FAILED."""
    result, item_ids = item_parameters.result, item_parameters.item_ids
    n = len(item_ids)
    bank_b = np.full(n, np.nan)
    is_anchor, is_drifted = np.zeros(n, bool), np.zeros(n, bool)
    b_drift, displacement = np.full(n, np.nan), np.full(n, np.nan)
    if item_parameters.settings.linking == LINKING_NONE or not bank.exists:
        method = METHOD_NONE if item_parameters.settings.linking == LINKING_NONE else METHOD_INITIAL
        record = ScaleRecord(method=method, scale_run_id=None, theta_mean=0.0, theta_sd=1.0)
        linked = result
    else:
        index = {item: j for j, item in enumerate(item_ids)}
        values = bank.values
        rows = np.array([index[item] for item in values["item_id"]], dtype=np.int64)
        bank_set = ItemSet.of(values["a"], values["b"], values["c"])
        run_set = ItemSet.of(result.a[rows], result.b[rows], result.c[rows])
        link: Link = link_to_bank(run_set, bank_set, result.nodes, result.weights)
        linked = transform_result(result, link.A, link.B, a_bounds=BRIEF_BOUNDS.a)
        bank_b[rows] = bank_set.b
        is_anchor[rows], is_drifted[rows], b_drift[rows] = link.used, link.drifted, link.b_drift
        displacement[rows] = link.displacement
        record = ScaleRecord(method=METHOD_STOCKING_LORD, scale_run_id=bank.scale_run_id,
                             theta_mean=link.B, theta_sd=link.A,
                             anchor_items=link.n_used, drifted_items=link.n_drifted)
    return ScaleLinking(
        calibration_run_id=item_parameters.calibration_run_id,
        item_bank=item_parameters.item_bank,
        item_ids=item_ids,
        result=linked,
        record=record,
        is_anchor=is_anchor,
        is_drifted=is_drifted,
        b_drift=b_drift,
        displacement=displacement,
        bank_b=bank_b,
        started_at=item_parameters.started_at,
    )


def skipped_reason_counts(skipped: Sequence[SkippedItem]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in skipped:
        out[s.reason] = out.get(s.reason, 0) + 1
    return out


def parameter_table(
    item_ids: Sequence[str],
    result: CalibrationResult,
    quality: ItemQuality,
    response_counts: np.ndarray,
    linking: ScaleLinking | None = None,
) -> pd.DataFrame:
    """One row per calibrated item, in the column order of irt_item_parameters (the link
    columns from `linking`; without one: no anchors, no drift). NaN standard errors are
    written as NULL (at a bound, or singular information)."""
    n = len(item_ids)
    grouped = quality.grouped
    table = pd.DataFrame(
        {
            "item_id": pd.Series(list(item_ids), dtype=object),
            "a": np.asarray(result.a, dtype=float),
            "b": np.asarray(result.b, dtype=float),
            "c": np.asarray(result.c, dtype=float),
            "a_se": np.asarray(result.a_se, dtype=float),
            "b_se": np.asarray(result.b_se, dtype=float),
            "c_se": np.asarray(result.c_se, dtype=float),
            "infit_mnsq": np.asarray(quality.infit_mnsq, dtype=float),
            "outfit_mnsq": np.asarray(quality.outfit_mnsq, dtype=float),
            "is_flagged": quality.is_flagged,
            "response_count": np.asarray(response_counts, dtype=np.int64),
            "is_anchor": linking.is_anchor if linking is not None else np.zeros(n, bool),
            "is_drifted": linking.is_drifted if linking is not None else np.zeros(n, bool),
            "b_drift": linking.b_drift if linking is not None else np.full(n, np.nan),
            "flag_reasons": pd.Series([list(r) for r in quality.reasons], dtype=object),
            "item_status": pd.Series([str(s) for s in result.item_status], dtype=object),
            "item_rest_corr": np.asarray(quality.item_rest, dtype=float),
            "q1_statistic": grouped.statistic,
            "q1_df": grouped.df,
            "q1_p_value": grouped.p_value,
            "q1_p_adjusted": grouped.p_adjusted,
        }
    )
    return table[list(PARAMETER_COLUMNS)]
