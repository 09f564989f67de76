"""The proven bound on membership inference against a release, read from its manifest.

A mechanism that is ``mu``-GDP bounds the ROC curve of every membership-inference attack
by ``TPR = Phi(Phi^-1(FPR) + mu)``, so its AUC is at most ``Phi(mu / sqrt 2)`` (Dong, Roth
and Su, "Gaussian Differential Privacy", JRSS-B 2022; :mod:`privacy.analysis.gdp`). A
record lives at one node and only that node's training sees it, so the release's bound is
the worst node's. The ``mu`` comes from what the release's manifest (the adapter's
metadata, :mod:`coordinator.publication`) records, best first:

1. The mechanism of every charge (noise multiplier, sample rate, steps per round and
   node, in the ledger's rounds), all full-batch: exactly
   ``mu = sqrt(sum_i steps_i / sigma_i^2)`` per node, for this release.
2. Each node's epsilon at the run's delta (``per_node_epsilon``, ``target_delta``): the
   largest ``mu`` whose curve is (epsilon, delta)-DP. That is the node's exact ``mu``
   when it trained full-batch (its ledger reads the exact Gaussian curve); after Poisson
   subsampling it is the Gaussian reading of the accountant's (epsilon, delta), not a
   proof, and the basis says so.

A manifest without DP, or without an epsilon and delta, gives no bound and says why;
never a bound from another recipe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from privacy.analysis import auc_bound, compose_mu, mu_for, steps_mu

__all__ = ["ReleaseBound", "release_auc_bound"]

FULL_BATCH = 1.0
MECHANISM_KEYS = ("noise_multiplier", "sample_rate", "steps")


@dataclass(frozen=True)
class ReleaseBound:
    """The bound on any membership attack's AUC against a release, and where it came from.

    Attributes:
        auc_bound: ``Phi(mu / sqrt 2)``, or ``None`` when the manifest proves nothing.
        mu: The worst node's Gaussian-DP parameter, or ``None``.
        epsilon: The worst node's recorded epsilon, or ``None``.
        delta: The run's delta, or ``None``.
        basis: How the bound was derived, or why there is none.
    """

    auc_bound: float | None
    mu: float | None
    epsilon: float | None
    delta: float | None
    basis: str

    def to_dict(self) -> dict[str, Any]:
        """The bound as JSON-serialisable data."""
        return asdict(self)


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _recorded_mechanisms(metadata: Mapping[str, Any]) -> dict[str, list[tuple[float, float, int]]]:
    """Per node, the (noise multiplier, sample rate, steps) of each round it was charged.

    Empty unless every charged round of every node records its whole mechanism.
    """
    ledger = metadata.get("ledger")
    rounds = ledger.get("rounds") if isinstance(ledger, Mapping) else None
    found: dict[str, list[tuple[float, float, int]]] = {}
    for entry in rounds if isinstance(rounds, list) else []:
        nodes = entry.get("nodes") if isinstance(entry, Mapping) else None
        for node, report in (nodes if isinstance(nodes, Mapping) else {}).items():
            if not isinstance(report, Mapping) or "epsilon" not in report:
                continue  # refused or not charged
            sigma, rate, steps = (_number(report.get(key)) for key in MECHANISM_KEYS)
            if sigma is None or rate is None or steps is None or sigma <= 0 or steps < 0:
                return {}
            found.setdefault(str(node), []).append((sigma, rate, int(steps)))
    return found


def _observer(metadata: Mapping[str, Any]) -> str:
    """Whom the ledger's epsilons hold for, as the manifest says, or the caveat if silent."""
    ledger = metadata.get("ledger")
    level = ledger.get("sample_level") if isinstance(ledger, Mapping) else None
    holds = level.get("holds_for") if isinstance(level, Mapping) else None
    if isinstance(holds, list) and holds:
        return f" It holds for the observers the ledger names: {', '.join(map(str, holds))}."
    shares = _number(metadata.get("dp_noise_shares"))
    if shares is not None and shares > 1:
        return (
            " It holds for whoever holds the release and added no noise share; a member "
            "that added one knows part of the noise and is not covered."
        )
    return ""


def release_auc_bound(metadata: Mapping[str, Any]) -> ReleaseBound:
    """The proven AUC bound of membership inference against the release ``metadata`` describes.

    Args:
        metadata: The adapter's saved metadata (its manifest's ``metadata``).

    Returns:
        The bound with its basis, or ``auc_bound=None`` with the reason.
    """
    delta = _number(metadata.get("target_delta"))
    raw = metadata.get("per_node_epsilon")
    spent = [_number(v) for v in (raw.values() if isinstance(raw, Mapping) else [])]
    epsilon = max((e for e in spent if e is not None), default=None)
    if metadata.get("dp_enabled") is False:
        return ReleaseBound(None, None, None, delta, "no bound: the release trained without DP")
    mechanisms = _recorded_mechanisms(metadata)
    if mechanisms and all(r == FULL_BATCH for m in mechanisms.values() for _, r, _ in m):
        node, mu = max(
            (
                (name, compose_mu(steps_mu(noise_multiplier=s, steps=t) for s, _, t in m))
                for name, m in mechanisms.items()
            ),
            key=lambda item: item[1],
        )
        return ReleaseBound(
            auc_bound(mu=mu),
            mu,
            epsilon,
            delta,
            f"exact mu-GDP of the recorded full-batch mechanism of the worst node ({node}): "
            f"mu = sqrt(sum of steps / noise multiplier^2) = {mu:.4g} over this run's "
            f"rounds.{_observer(metadata)}",
        )
    if epsilon is None:
        return ReleaseBound(
            None, None, None, delta, "no bound: the manifest records no node's epsilon"
        )
    if delta is None or not 0 < delta < 1:
        return ReleaseBound(
            None, None, epsilon, None, "no bound: the manifest records no delta in (0, 1)"
        )
    mu = mu_for(epsilon=epsilon, delta=delta)
    reading = (
        "some recorded charge subsampled its records, so this is the Gaussian reading of "
        "the accountant's (epsilon, delta), not a proof"
        if mechanisms
        else "exact if the node trained full-batch, the Gaussian reading of its "
        "accountant's (epsilon, delta) if it subsampled its records"
    )
    return ReleaseBound(
        auc_bound(mu=mu),
        mu,
        epsilon,
        delta,
        f"the largest mu-GDP consistent with the worst node's epsilon {epsilon:.4g} at delta "
        f"{delta:g} (mu = {mu:.4g}): {reading}.{_observer(metadata)}",
    )
