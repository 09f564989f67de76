"""The training budget a policy allows: epsilon per node from its epsilon and MIA limits.

A policy bounds privacy twice: ``[privacy] max_epsilon_per_node`` (the formal budget, what
a node's ledger may charge) and ``[audit] max_mia_auc`` (what the membership-inference
audit may measure). For the recipes whose every step uses every record (full-batch
DP-SGD, distributed DP's one noisy step per round) the guarantee is exactly ``mu``-GDP,
which also bounds the AUC of *any* membership-inference attack by ``Phi(mu / sqrt 2)``
(Dong, Roth and Su, JRSS-B 2022; :mod:`privacy.analysis.gdp`). So the largest epsilon
whose ``mu`` keeps that bound at ``max_mia_auc`` turns the audit's threshold into a
proof, not only a measurement.

How much noise protects a record depends on who looks (:mod:`privacy.observers`): under
distributed DP with ``t`` noise shares a fellow member, who knows its own share, faces
only ``sqrt((t - 1) / t)`` of the secure sum's noise, while the coordinator, partners
and outsiders face all of it. A node calibrates its noise so that the run's
``target-epsilon`` holds for the fellow member, the strictest observer, and its ledger
charges that view; every less informed observer then gets a smaller epsilon. The plan
therefore (1) keeps the target within the budget, since that is what ledgers charge, and
(2) keeps the MIA bound within ``max_mia_auc`` for the strictest observer the policy names
in ``[privacy] observers`` (default: all of them). It reports, for each named observer,
the epsilon and AUC bound it faces at ``t`` shares.

The bound covers full-batch recipes only: with Poisson subsampling (rate < 1) no exact
GDP bound applies, and the planned epsilon is then just the budget.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

from policies.errors import PolicyError
from policies.model import Policy

__all__ = ["LIMIT_EPSILON", "LIMIT_MIA_AUC", "ObserverBound", "PrivacyPlan", "plan_privacy"]

logger = logging.getLogger(__name__)

LIMIT_EPSILON = "privacy.max_epsilon_per_node"
LIMIT_MIA_AUC = "audit.max_mia_auc"
CHARGED_OBSERVER = "fellow-member"
LEDGER_UNIT = "query or person (all its interaction records)"
"""``privacy.DEFAULT_UNIT``, named here so that planning does not load the accountants."""
"""The observer whose view nodes calibrate to and charge (the strictest one)."""


@dataclass(frozen=True)
class ObserverBound:
    """What one observer faces at the planned target.

    Attributes:
        observer: The observer (a ``privacy.observers.Observer`` value).
        epsilon: Its epsilon per node (record level) at the plan's delta.
        mu: Its Gaussian-DP parameter.
        auc_bound: The largest AUC of any membership-inference attack it can run.
    """

    observer: str
    epsilon: float
    mu: float
    auc_bound: float


@dataclass(frozen=True)
class PrivacyPlan:
    """The per-node budget to train with, and the proof it carries.

    Attributes:
        epsilon: Target epsilon per node (record level) at ``delta``: the run's
            ``target-epsilon``, which nodes calibrate to and charge for a fellow member.
        delta: The policy's delta.
        mu: The Gaussian-DP parameter of a full-batch run at ``epsilon``.
        auc_bound: The largest AUC any membership-inference attack reaches at ``mu``.
        limited_by: Which policy key set ``epsilon`` (``LIMIT_EPSILON`` or ``LIMIT_MIA_AUC``).
        observer: The strictest observer the policy names (the AUC limit binds for it).
        noise_shares: The ``t`` the observers' bounds were computed for.
        observers: Each named observer's epsilon and AUC bound.
    """

    epsilon: float
    delta: float
    mu: float
    auc_bound: float
    limited_by: str
    observer: str
    noise_shares: int
    observers: tuple[ObserverBound, ...]

    def bound_for(self, observer: str) -> ObserverBound:
        """The named observer's bound (KeyError if the policy did not name it)."""
        for bound in self.observers:
            if bound.observer == observer:
                return bound
        raise KeyError(observer)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view, with the conditions the bound needs."""
        data = asdict(self)
        data["observers"] = {b["observer"]: b for b in data["observers"]}
        for bound in data["observers"].values():
            del bound["observer"]
        return {
            **data,
            "epsilon_holds_for": CHARGED_OBSERVER,
            # The unit every node's DP-SGD clips and its ledger charges.
            "privacy_unit": LEDGER_UNIT,
            "bound_holds_for": "full-batch DP-SGD and distributed DP (sample rate 1)",
        }


def plan_privacy(policy: Policy, *, noise_shares: int = 0) -> PrivacyPlan:
    """The largest per-node epsilon both the budget and the MIA limit of ``policy`` allow.

    Args:
        policy: The policy.
        noise_shares: ``t``, the run's ``dp-noise-shares`` (0: no distributed DP). The
            target does not depend on it while the policy names the fellow member; the
            other observers' bounds do.

    Raises:
        PolicyError: ``max_mia_auc`` is 0.5 or less (no training with noise of finite
            size keeps every attack at guessing level), or ``noise_shares`` is negative.
    """
    # scipy loads here, not when the CLI starts (policies is imported by every command).
    from privacy.analysis import auc_bound, epsilon_for_mu, mu_for, mu_for_auc
    from privacy.observers import Observer, noise_ratio, strictest_observer

    if isinstance(noise_shares, bool) or not isinstance(noise_shares, int) or noise_shares < 0:
        raise PolicyError(
            f"noise shares must be an integer >= 0, got {noise_shares!r}",
            key="dp-noise-shares",
            expected="the run's dp-noise-shares t (0: no distributed DP)",
            fix="pass the run config's dp-noise-shares",
        )
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
    named = [Observer(name) for name in policy.privacy.observers]
    strictest = strictest_observer(named)
    charged = noise_ratio(observer=Observer.FELLOW_MEMBER, shares=noise_shares)

    def gain(observer: Observer) -> float:
        # mu_observer = mu_target * gain: the charged view's noise over the observer's.
        return charged / noise_ratio(observer=observer, shares=noise_shares)

    limited_by = LIMIT_EPSILON
    mu = mu_for(epsilon=budget, delta=delta)
    if max_auc < 1.0:
        by_auc = mu_for_auc(max_auc=max_auc) / gain(strictest)
        if by_auc < mu:
            mu, limited_by = by_auc, LIMIT_MIA_AUC
    epsilon = budget if limited_by == LIMIT_EPSILON else epsilon_for_mu(mu=mu, delta=delta)
    bounds = tuple(
        ObserverBound(
            observer=o.value,
            epsilon=epsilon_for_mu(mu=mu * gain(o), delta=delta),
            mu=mu * gain(o),
            auc_bound=auc_bound(mu=mu * gain(o)),
        )
        for o in Observer
        if o in named
    )
    plan = PrivacyPlan(
        epsilon=epsilon,
        delta=delta,
        mu=mu,
        auc_bound=auc_bound(mu=mu),
        limited_by=limited_by,
        observer=strictest.value,
        noise_shares=noise_shares,
        observers=bounds,
    )
    logger.info(
        "plan: epsilon=%.4f delta=%g mu=%.4f auc_bound=%.4f limited_by=%s observer=%s t=%d",
        plan.epsilon,
        plan.delta,
        plan.mu,
        plan.auc_bound,
        plan.limited_by,
        plan.observer,
        noise_shares,
    )
    return plan
