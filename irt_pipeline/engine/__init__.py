"""The calibration engine: pure numpy/scipy, no Dagster, no database.

    result = calibrate_3pl(responses)        # 3PL by MML-EM (Bock & Aitkin 1981)
    result = calibrate_3pl(responses, se_method="full")   # SEs with the cross-item terms
    fit = item_fit(responses, result)        # infit / outfit mean squares
    flagged = flag_misfit(fit.infit_mnsq, fit.outfit_mnsq)
"""

from irt_pipeline.engine.em import calibrate_3pl
from irt_pipeline.engine.fit import FLAG_LOWER, FLAG_UPPER, ItemFit, flag_misfit, item_fit
from irt_pipeline.engine.mstep import BRIEF_BOUNDS, Bounds
from irt_pipeline.engine.priors import DEFAULT_PRIORS, Priors
from irt_pipeline.engine.result import (
    STATUS_ALL_CORRECT,
    STATUS_ALL_INCORRECT,
    STATUS_HEYWOOD,
    STATUS_NO_RESPONSES,
    STATUS_OK,
    STATUS_SINGULAR,
    CalibrationResult,
)
from irt_pipeline.engine.standard_errors import FULL_INFORMATION_MAX_ITEMS, SE_METHODS

__all__ = [
    "BRIEF_BOUNDS", "Bounds", "CalibrationResult", "DEFAULT_PRIORS", "FLAG_LOWER", "FLAG_UPPER",
    "FULL_INFORMATION_MAX_ITEMS", "ItemFit", "Priors", "SE_METHODS", "STATUS_ALL_CORRECT",
    "STATUS_ALL_INCORRECT", "STATUS_HEYWOOD", "STATUS_NO_RESPONSES", "STATUS_OK",
    "STATUS_SINGULAR", "calibrate_3pl", "flag_misfit", "item_fit",
]
