"""The training budget a policy allows: epsilon per node from its epsilon and MIA limits.

A policy bounds privacy twice: ``[privacy] max_epsilon_per_node`` (the formal budget) and
``[audit] max_mia_auc`` (what the membership-inference audit may measure). For the
recipes whose every step uses every record (full-batch DP-SGD, distributed DP's one
noisy step per round) the guarantee is exactly ``mu``-GDP, which also bounds the AUC of
*any* membership-inference attack by ``Phi(mu / sqrt 2)`` (Dong, Roth and Su, JRSS-B
2022; :mod:`privacy.analysis.gdp`). So the largest epsilon whose ``mu`` keeps that
bound at ``max_mia_auc`` turns the audit's threshold into a proof, not only a
measurement. :func:`plan_privacy` returns the smaller of the two epsilons and which
limit set it; a federation run with that ``target-epsilon`` satisfies both.

The bound covers full-batch recipes only: with Poisson subsampling (rate < 1) no exact
GDP bound applies, and the planned epsilon is then just the budget.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from policies.errors import PolicyError
from policies.model import Policy

__all__ = ["LIMIT_EPSILON", "LIMIT_MIA_AUC", "PrivacyPlan", "plan_privacy"]

logger = logging.getLogger(__name__)

LIMIT_EPSILON = "privacy.max_epsilon_per_node"
LIMIT_MIA_AUC = "audit.max_mia_auc"


@dataclass(frozen=True)
class PrivacyPlan:
    """The per-node budget to train with, and the proof it carries.

    Attributes:
        epsilon: Target epsilon per node (record level) at ``delta``.
        delta: The policy's delta.
        mu: The Gaussian-DP parameter of a full-batch run at ``epsilon``.
        auc_bound: The largest AUC any membership-inference attack reaches at ``mu``.
        limited_by: Which policy key set ``epsilon`` (``LIMIT_EPSILON`` or ``LIMIT_MIA_AUC``).
    """

    epsilon: float
    delta: float
    mu: float
    auc_bound: float
    limited_by: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view, with the conditions the bound needs."""
        return {
            **asdict(self),
            "privacy_unit": "one interaction record",
            "bound_holds_for": "full-batch DP-SGD and distributed DP (sample rate 1)",
        }


def plan_privacy(policy: Policy) -> PrivacyPlan:
    """The largest per-node epsilon both the budget and the MIA limit of ``policy`` allow.

    Raises:
        PolicyError: ``max_mia_auc`` is 0.5 or less: no training with noise of finite
            size keeps every attack at guessing level.
    """
    # scipy loads here, not when the CLI starts (policies is imported by every command).
    from privacy.analysis import auc_bound, epsilon_for_auc, mu_for

    delta = policy.privacy.target_delta
    budget = policy.privacy.max_epsilon_per_node
    max_auc = policy.audit.max_mia_auc
    if max_auc <= 0.5:
        raise PolicyError(
            f"audit.max_mia_auc = {max_auc} cannot be guaranteed by any epsilon > 0",
            key=LIMIT_MIA_AUC,
            expected="a membership-inference AUC limit above 0.5 (guessing), e.g. 0.55",
            fix="raise audit.max_mia_auc, or train no adapter",
        )
    limited_by = LIMIT_EPSILON
    epsilon = budget
    if max_auc < 1.0:
        by_auc = epsilon_for_auc(max_auc=max_auc, delta=delta)
        if by_auc < budget:
            epsilon, limited_by = by_auc, LIMIT_MIA_AUC
    mu = mu_for(epsilon=epsilon, delta=delta)
    plan = PrivacyPlan(
        epsilon=epsilon, delta=delta, mu=mu, auc_bound=auc_bound(mu=mu), limited_by=limited_by
    )
    logger.info(
        "plan: epsilon=%.4f delta=%g mu=%.4f auc_bound=%.4f limited_by=%s",
        plan.epsilon,
        plan.delta,
        plan.mu,
        plan.auc_bound,
        plan.limited_by,
    )
    return plan
