"""The brief's typed contract (STORY-ST-4, sections 3 and 5): one definition of each shape.

Pydantic v2 models with exactly the brief's field names, types and constraints; what this project
adds (issue 9: the bank-scale fields of `IrtCalibrationRun`, `IrtStudentAbility`, the error code
STUDENT_NOT_FOUND) comes after the brief's fields and leaves them unchanged. The Dagster
config (`defs.config.CalibrationConfig`) builds its fields from the same annotated types as
`IrtCalibrationRequest`; the storage layer returns `IrtItemParameters`; the CLI prints the
`{"data": ..., "error": ...}` envelope; `scripts/generate_types.py` turns these models into
`packages/types/src/student/irt.types.ts` for the TypeScript monorepo.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Generic, Literal, Optional, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from irt_pipeline import errors

# -- request fields, shared with the Dagster config class -------------------------------------
ItemIds = Annotated[
    Optional[list[str]],
    Field(description="Optional filter: calibrate only these item ids. Omit to calibrate every eligible item."),
]
MinResponses = Annotated[
    int, Field(ge=1, description="Items with fewer responses (first attempts) are skipped. >= 1.")
]
MaxIterations = Annotated[
    int, Field(ge=1, le=500, description="Upper bound on EM iterations (1-500).")
]
ConvergenceThreshold = Annotated[
    float,
    Field(gt=0, lt=1, description="EM stops when the largest change of any a, b or c is below this (0 < t < 1)."),
]

DEFAULT_MIN_RESPONSES = 100
DEFAULT_MAX_ITERATIONS = 100
DEFAULT_CONVERGENCE_THRESHOLD = 0.001
MODEL = "3pl"

ErrorCode = Literal[
    "VALIDATION_ERROR",
    "INSUFFICIENT_DATA",
    "CALIBRATION_IN_PROGRESS",
    "CALIBRATION_FAILED",
    "ITEM_NOT_FOUND",
    "STUDENT_NOT_FOUND",  # not the brief's: `irt-pipeline ability` (issue 9)
]
RunStatus = Literal["running", "completed", "failed"]
# Issue 10: why an item is flagged (irt_item_parameters.flag_reasons) and the engine's item status.
FlagReason = Literal["infit", "outfit", "possible_miskey", "low_discrimination", "model_misfit",
                     "at_bound", "se_unavailable"]
ItemStatus = Literal["ok", "heywood", "singular_information", "all_correct", "all_incorrect", "no_responses"]
LinkingMethod = Literal["initial", "stocking_lord", "none"]

# A UUID as its string; database rows give uuid.UUID values (used by the fields added after the brief).
UuidStr = Annotated[str, BeforeValidator(lambda value: str(value) if isinstance(value, uuid.UUID) else value)]


class _Output(BaseModel):
    """Shapes the service returns: every field is always present in the JSON (the JSON Schema
    of serialization marks fields with defaults required, as the brief's interfaces do)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class IrtCalibrationRequest(BaseModel):
    """Request body of POST /api/irt/calibrate: here, the run config of a calibration."""

    item_ids: ItemIds = None
    min_responses: MinResponses = DEFAULT_MIN_RESPONSES
    max_iterations: MaxIterations = DEFAULT_MAX_ITERATIONS
    convergence_threshold: ConvergenceThreshold = DEFAULT_CONVERGENCE_THRESHOLD


class IrtItemParameters(_Output):
    """IRT 3PL item parameters after calibration."""

    item_id: str
    a: float = Field(description="Discrimination parameter")
    b: float = Field(description="Difficulty parameter")
    c: float = Field(description="Guessing parameter")
    # Nullable since issue 10 (the brief's are numbers): null where the parameter is at its bound
    # (flag reason at_bound) or the item's information is singular (se_unavailable).
    a_se: Optional[float] = Field(description="Standard error of a; null if a is at its bound or unavailable")
    b_se: Optional[float] = Field(description="Standard error of b; null if unavailable")
    c_se: Optional[float] = Field(description="Standard error of c; null if c is at its bound or unavailable")
    infit_mnsq: float
    outfit_mnsq: float
    is_flagged: bool
    response_count: int
    calibrated_at: datetime
    calibration_run_id: str
    # -- not the brief's: item diagnostics (issue 10, migration 0008), appended.
    flag_reasons: list[FlagReason] = Field(
        default_factory=list, description="Why the item is flagged (empty: not flagged); README 'Item quality'"
    )
    item_status: ItemStatus = Field(default="ok", description="The engine's status of the item's estimates")
    item_rest_corr: Optional[float] = Field(
        default=None, description="Correlation of the item with each student's proportion correct on the other items"
    )
    q1_statistic: Optional[float] = Field(default=None, description="Yen's Q1 grouped fit statistic")
    q1_df: Optional[float] = Field(default=None, description="Degrees of freedom of Q1")
    q1_p_value: Optional[float] = Field(default=None, description="p-value of Q1")
    q1_p_adjusted: Optional[float] = Field(
        default=None, description="Benjamini-Hochberg adjusted p-value of Q1 across the run's items"
    )


class IrtSkippedItem(_Output):
    """An item that was skipped during calibration, and why."""

    item_id: str
    reason: str
    response_count: int


class IrtCalibrationResponse(_Output):
    """Response body of POST /api/irt/calibrate: the outcome of one calibration run."""

    calibration_run_id: str
    items_calibrated: int
    items_skipped: int
    items_flagged: int
    convergence_achieved: bool
    iterations_used: int
    elapsed_seconds: float
    parameters: list[IrtItemParameters]
    skipped_items: list[IrtSkippedItem]


class IrtCalibrationConfig(_Output):
    """Configuration snapshot stored with each calibration run."""

    min_responses: int
    max_iterations: int
    convergence_threshold: float
    model: Literal["3pl"] = MODEL


class IrtCalibrationRun(_Output):
    """Calibration run metadata for the audit trail."""

    id: str
    started_at: datetime
    completed_at: Optional[datetime] = None
    status: RunStatus
    items_calibrated: int
    items_skipped: int
    items_flagged: int
    convergence_achieved: bool
    iterations_used: int
    elapsed_seconds: float
    config: IrtCalibrationConfig
    # -- not the brief's: the bank scale (issue 9, migration 0005) and the data read (migration 0006).
    # Appended after the brief's fields, which keep their names, types and order.
    linking_method: Optional[LinkingMethod] = Field(
        default=None,
        description="How the run was put on the bank scale: initial (the bank's first run, defines the scale), "
        "stocking_lord (linked over anchor items), none (started a new scale); null before linking",
    )
    scale_run_id: Optional[UuidStr] = Field(
        default=None, description="The run that defined the scale this run is on (itself for initial and none)"
    )
    theta_mean: Optional[float] = Field(
        default=None, description="Mean ability of this run's students on the bank scale (B of the link)"
    )
    theta_sd: Optional[float] = Field(
        default=None, description="SD of this run's students' abilities on the bank scale (A of the link)"
    )
    anchor_items: int = Field(default=0, description="Anchor items used for the link (after the drift screen)")
    drifted_items: int = Field(default=0, description="Anchor items the drift screen dropped")
    data_watermark: Optional[int] = Field(
        default=None, description="Highest student_attempts id of the bank the run read (0: none)"
    )
    data_read_at: Optional[datetime] = Field(
        default=None, description="When the run's snapshot of the attempts was taken"
    )


class IrtStudentAbility(_Output):
    """A student's ability on an item bank's scale, estimated by one calibration run (not the brief's: issue 9)."""

    student_id: UuidStr
    item_bank: str
    theta: float = Field(description="Ability: EAP estimate on the bank scale")
    theta_se: float = Field(description="Standard error of theta: posterior standard deviation")
    response_count: int = Field(description="Responses (first attempts) of the student on the run's items")
    estimated_at: datetime = Field(description="When the run published it (its parameters' calibrated_at)")
    calibration_run_id: UuidStr


class IrtApiError(_Output):
    """The error half of the envelope."""

    code: ErrorCode
    message: str


T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    """`{"data": ..., "error": null}` on success, `{"data": null, "error": {...}}` on failure."""

    data: Optional[T] = None
    error: Optional[IrtApiError] = None

    @classmethod
    def ok(cls, data: T) -> "Envelope[T]":
        return cls(data=data, error=None)

    @classmethod
    def failure(cls, exc: errors.IrtError) -> "Envelope[T]":
        return cls(data=None, error=IrtApiError(code=exc.code, message=exc.detail))


# What `scripts/generate_types.py` emits: the brief's interfaces in its order, then the additions.
CONTRACT_MODELS = (
    IrtItemParameters,
    IrtCalibrationRequest,
    IrtCalibrationResponse,
    IrtSkippedItem,
    IrtCalibrationRun,
    IrtCalibrationConfig,
    IrtApiError,
    IrtStudentAbility,
)
