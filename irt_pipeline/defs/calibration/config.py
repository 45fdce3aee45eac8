"""Run configuration of a calibration: the brief's request fields (section 3, IrtCalibrationRequest).

Where the values live
---------------------
`CalibrationConfig` is the config of the FIRST asset, ``response_matrix``, and of no other asset.
Dagster checks types and unknown fields when a run is launched, but pydantic constraints
(``ge``/``le``/``gt``/``lt``, the UUID check of ``item_ids``) only when a step starts: with the
config on the first step, an out-of-range value fails the run before anything is read,
computed or written, and the error names the field. ``response_matrix`` freezes the validated
values into a `CalibrationSettings` that travels downstream inside every asset value
(``ResponseMatrix.settings`` → ``EligibleItems.settings`` → ``ItemParameters.settings``), so the
later assets use exactly the values the run was launched with, and a re-execution from a later
step reuses them. To calibrate with other settings, materialize from ``response_matrix``.

In launchpad YAML::

    ops:
      response_matrix:
        config: {min_responses: 100, max_iterations: 100, convergence_threshold: 0.001,
                 linking: stocking_lord, se_method: block,
                 flags: {mnsq_lower: 0.7, mnsq_upper: 1.3, misfit_fdr: 0.01}}
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import dagster as dg
from pydantic import Field, field_validator, model_validator

from irt_pipeline.engine.quality import QualityThresholds

from irt_pipeline.models import (
    DEFAULT_CONVERGENCE_THRESHOLD,
    DEFAULT_MAX_ITERATIONS,
    DEFAULT_MIN_RESPONSES,
    ConvergenceThreshold,
    IrtCalibrationConfig,
    ItemIds,
    MaxIterations,
    MinResponses,
)

# The thresholds a run's config snapshot records (QualityThresholds fields a user can set).
FLAG_FIELDS = ("mnsq_lower", "mnsq_upper", "miskey_item_rest", "low_discrimination_item_rest", "misfit_fdr")
LINKING_STOCKING_LORD = "stocking_lord"
LINKING_NONE = "none"
DEFAULT_LINKING = LINKING_STOCKING_LORD
Linking = Annotated[
    Literal["stocking_lord", "none"],
    Field(
        description=(
            "How this run is put on the item bank's scale. 'stocking_lord' (default): linked to the "
            "bank scale that the bank's first completed run defined, over the anchor items (this "
            "run's items that already have a bank value), anchors that drifted left out; the run "
            "fails if fewer than 5 anchors remain. 'none': this run starts a NEW scale for the bank "
            "(theta ~ N(0, 1) for its students); later runs link to it. The first run of a bank "
            "defines the scale either way."
        )
    ),
]


SeMethod = Annotated[
    Literal["block", "full"],
    Field(
        description=(
            "Standard errors of a, b, c. 'block' (default): each item's own 3 x 3 block of the observed "
            "information (Louis 1982), fast at any size. 'full': the whole information matrix of all items "
            "with the cross-item terms (a few percent larger SEs; cost grows with the square of the item "
            "count: README 'Standard errors'). Either way, a parameter at its bound has no SE (NULL)."
        )
    ),
]
_DEFAULT_THRESHOLDS = QualityThresholds()


class FlagThresholds(dg.Config):
    """When an item is flagged, and for which reason (README, "Item quality")."""

    mnsq_lower: float = Field(
        default=_DEFAULT_THRESHOLDS.mnsq_lower, gt=0, lt=1,
        description="Flag 'infit'/'outfit' when a predictive mean square is below this (too predictable, "
        "Guttman-like). The brief: 0.7.",
    )
    mnsq_upper: float = Field(
        default=_DEFAULT_THRESHOLDS.mnsq_upper, gt=1, lt=10,
        description="Flag 'infit'/'outfit' when a predictive mean square is above this (noisy). The brief: 1.3.",
    )
    miskey_item_rest: float = Field(
        default=_DEFAULT_THRESHOLDS.miskey_item_rest, ge=-1, le=0,
        description="Flag 'possible_miskey' when the item-rest correlation is below this and significantly "
        "below 0 (one-sided 1%): the abler students fail the item.",
    )
    low_discrimination_item_rest: float = Field(
        default=_DEFAULT_THRESHOLDS.low_discrimination_item_rest, ge=-1, le=1,
        description="Flag 'low_discrimination' when the item-rest correlation is below this (and the item "
        "is not a possible miskey).",
    )
    misfit_fdr: float = Field(
        default=_DEFAULT_THRESHOLDS.misfit_fdr, gt=0, lt=1,
        description="Flag 'model_misfit' when the Q1 grouped fit test's Benjamini-Hochberg adjusted p-value "
        "across the run's items is below this (the false discovery rate).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "FlagThresholds":
        if self.miskey_item_rest > self.low_discrimination_item_rest:
            raise ValueError(
                f"miskey_item_rest ({self.miskey_item_rest}) must not exceed low_discrimination_item_rest "
                f"({self.low_discrimination_item_rest})"
            )
        return self

    def thresholds(self) -> QualityThresholds:
        return QualityThresholds(
            mnsq_lower=self.mnsq_lower, mnsq_upper=self.mnsq_upper, miskey_item_rest=self.miskey_item_rest,
            low_discrimination_item_rest=self.low_discrimination_item_rest, misfit_fdr=self.misfit_fdr,
        )


class CalibrationConfig(dg.Config):
    """Calibration settings of one run (all optional; the defaults are the brief's).

    The fields are the brief's `IrtCalibrationRequest` (irt_pipeline/models.py): the same
    annotated types, so names, constraints and descriptions are defined once. On top of the
    request model, item ids are checked to be UUIDs (they are UUIDs in the database)."""

    item_ids: ItemIds = None
    min_responses: MinResponses = DEFAULT_MIN_RESPONSES
    max_iterations: MaxIterations = DEFAULT_MAX_ITERATIONS
    convergence_threshold: ConvergenceThreshold = DEFAULT_CONVERGENCE_THRESHOLD
    linking: Linking = DEFAULT_LINKING
    se_method: SeMethod = "block"
    flags: FlagThresholds = Field(
        default_factory=FlagThresholds,
        description="When an item is flagged, and for which reason (kept in the run's config snapshot).",
    )

    @field_validator("item_ids")
    @classmethod
    def _canonical_uuids(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must not be empty (omit item_ids to calibrate every item of the bank)")
        canonical: list[str] = []
        for raw in value:
            try:
                item_id = str(uuid.UUID(str(raw).strip()))
            except ValueError:
                raise ValueError(f"not a UUID: {raw!r}") from None
            if item_id not in canonical:
                canonical.append(item_id)
        return canonical

    def settings(self) -> CalibrationSettings:
        return CalibrationSettings(
            item_ids=tuple(self.item_ids) if self.item_ids is not None else None,
            min_responses=self.min_responses,
            max_iterations=self.max_iterations,
            convergence_threshold=self.convergence_threshold,
            linking=self.linking,
            se_method=self.se_method,
            thresholds=self.flags.thresholds(),
        )


@dataclass(frozen=True)
class CalibrationSettings:
    """The validated config, frozen and carried downstream by the asset values."""

    item_ids: tuple[str, ...] | None
    min_responses: int
    max_iterations: int
    convergence_threshold: float
    linking: str = DEFAULT_LINKING
    se_method: str = "block"
    thresholds: QualityThresholds = _DEFAULT_THRESHOLDS

    def snapshot(self) -> dict[str, Any]:
        """The config JSON stored on the run row (brief: IrtCalibrationConfig, plus the filter)."""
        snap: dict[str, Any] = IrtCalibrationConfig(
            min_responses=self.min_responses,
            max_iterations=self.max_iterations,
            convergence_threshold=self.convergence_threshold,
        ).model_dump()
        snap["linking"] = self.linking
        snap["se_method"] = self.se_method
        snap["flags"] = {name: getattr(self.thresholds, name) for name in FLAG_FIELDS}
        if self.item_ids is not None:
            snap["item_ids"] = list(self.item_ids)
        return snap


def run_config_for(config: CalibrationConfig) -> dg.RunConfig:
    """The run config that hands `config` to the calibration assets (used by the CLI and tests)."""
    return dg.RunConfig(ops={"response_matrix": config})
