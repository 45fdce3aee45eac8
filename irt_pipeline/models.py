"""The brief's typed contract (STORY-ST-4, sections 3 and 5): one definition of each shape.

Pydantic v2 models with exactly the brief's field names, types and constraints. The Dagster
config (`defs.config.CalibrationConfig`) builds its fields from the same annotated types as
`IrtCalibrationRequest`; the storage layer returns `IrtItemParameters`; the CLI prints the
`{"data": ..., "error": ...}` envelope; `scripts/generate_types.py` turns these models into
`packages/types/src/student/irt.types.ts` for the TypeScript monorepo.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, Literal, Optional, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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
    "VALIDATION_ERROR", "INSUFFICIENT_DATA", "CALIBRATION_IN_PROGRESS", "CALIBRATION_FAILED", "ITEM_NOT_FOUND"
]
RunStatus = Literal["running", "completed", "failed"]


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
    a_se: float = Field(description="Standard error of a")
    b_se: float = Field(description="Standard error of b")
    c_se: float = Field(description="Standard error of c")
    infit_mnsq: float
    outfit_mnsq: float
    is_flagged: bool
    response_count: int
    calibrated_at: datetime
    calibration_run_id: str


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


# The brief's interfaces, in its order: what `scripts/generate_types.py` emits.
CONTRACT_MODELS = (
    IrtItemParameters,
    IrtCalibrationRequest,
    IrtCalibrationResponse,
    IrtSkippedItem,
    IrtCalibrationRun,
    IrtCalibrationConfig,
    IrtApiError,
)
