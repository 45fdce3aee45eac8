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
                 linking: stocking_lord}
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import dagster as dg
from pydantic import Field, field_validator

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
        )


@dataclass(frozen=True)
class CalibrationSettings:
    """The validated config, frozen and carried downstream by the asset values."""

    item_ids: tuple[str, ...] | None
    min_responses: int
    max_iterations: int
    convergence_threshold: float
    linking: str = DEFAULT_LINKING

    def snapshot(self) -> dict[str, Any]:
        """The config JSON stored on the run row (brief: IrtCalibrationConfig, plus the filter)."""
        snap: dict[str, Any] = IrtCalibrationConfig(
            min_responses=self.min_responses,
            max_iterations=self.max_iterations,
            convergence_threshold=self.convergence_threshold,
        ).model_dump()
        snap["linking"] = self.linking
        if self.item_ids is not None:
            snap["item_ids"] = list(self.item_ids)
        return snap


def run_config_for(config: CalibrationConfig) -> dg.RunConfig:
    """The run config that hands `config` to the calibration assets (used by the CLI and tests)."""
    return dg.RunConfig(ops={"response_matrix": config})
