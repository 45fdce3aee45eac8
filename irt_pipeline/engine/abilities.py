"""Student abilities: EAP estimates and posterior standard deviations (Bock & Mislevy 1982).

With the fitted items and the calibration's quadrature grid (t_q, w_q), student i's posterior
over the nodes is the E-step's

    post_iq = exp(LL_iq + log w_q) / sum_q' exp(LL_iq' + log w_q')       (estep.py)

and
    EAP_i = sum_q t_q post_iq,     PSD_i = sqrt(sum_q t_q^2 post_iq - EAP_i^2).

On a result moved to the bank scale (linking.transform_result: t -> A t + B, same weights) the
same formulas give A EAP_i + B and A PSD_i, i.e. the abilities on the bank scale with the run's
population N(B, A^2) as the prior. Computed one chunk of students at a time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from irt_pipeline.engine.estep import posterior_moments
from irt_pipeline.engine.responses import prepare_responses
from irt_pipeline.engine.result import CalibrationResult


@dataclass(frozen=True)
class Abilities:
    """One entry per student (row of the response matrix)."""

    theta: np.ndarray            # EAP
    theta_se: np.ndarray         # posterior standard deviation
    response_counts: np.ndarray  # observed responses per student

    @property
    def n_students(self) -> int:
        return int(self.theta.shape[0])


def eap_abilities(responses, result: CalibrationResult) -> Abilities:
    """EAP and PSD of every student of `responses` under the fitted `result` (on its scale)."""
    data = prepare_responses(responses)
    if data.n_items != result.n_items:
        raise ValueError(f"responses has {data.n_items} items but the result has {result.n_items}")
    theta, sd = posterior_moments(data, result.a, result.b, result.c, result.nodes, result.weights)
    return Abilities(theta=theta, theta_se=sd, response_counts=data.student_counts.copy())
