"""Who sees what under distributed DP: the noise multiplier each observer faces.

Under distributed DP (:mod:`dp_training.distributed_dp`) each of the round's ``t`` or more
nodes adds Gaussian noise of multiplier ``sigma / sqrt(t)`` to its clipped gradient sum,
and the secure sum of ``t`` shares carries multiplier ``sigma`` (Truex et al., AISec
2019; Kairouz, Liu and Steinke, ICML 2021). How much of that noise protects one node's
record depends on who looks:

- an **outsider** (anyone holding the released adapter) and a **partner** (a querier of
  the index built with it) see a post-processing of the noisy sum: multiplier ``sigma``;
- the honest-but-curious **coordinator** sees only the sum (CKKS secure aggregation,
  at least ``t`` shares): multiplier ``sigma``;
- a **fellow member** knows its own noise share and can subtract it, and the decrypting
  node, a member, sees the raw sum. In a round of exactly ``t`` nodes another node's
  record is then hidden by the other ``t - 1`` shares only: multiplier
  ``sigma * sqrt((t - 1) / t)``. With ``t = 1`` the single share is the whole noise and
  with ``t = 0`` (no sharing) each node adds all of it, so there the fellow member faces
  ``sigma`` too. Together: ``sigma * sqrt(max(t - 1, 1) / t)`` for ``t >= 1``.

The fellow member is therefore the strictest observer: a node that calibrates its noise so
that a fellow member's view meets the target epsilon (as the node does, see
:func:`total_noise_for_observer`) meets it for every observer; a guarantee for an
observer also holds for every observer that faces at least as much noise
(:func:`covered_by`). Pure functions of numbers, keyword-only; the observers of the
deviating coordinator (refused by the protocol) and of collusions are outside this
model (ARCHITECTURE.md's threat model).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from enum import StrEnum

from privacy.analysis import PrivacyParameterError
from privacy.analysis.parameters import check_noise_multiplier

__all__ = [
    "Observer",
    "covered_by",
    "noise_ratio",
    "observed_noise_multiplier",
    "strictest_observer",
    "total_noise_for_observer",
]


class Observer(StrEnum):
    """A party looking at one node's contribution, from least to most informed."""

    OUTSIDER = "outsider"
    PARTNER = "partner"
    COORDINATOR = "coordinator"
    FELLOW_MEMBER = "fellow-member"


_ORDER: tuple[Observer, ...] = tuple(Observer)
"""Least to most informed: each faces at most the noise of the ones before it."""


def _check_shares(shares: int) -> int:
    if isinstance(shares, bool) or not isinstance(shares, int) or shares < 0:
        raise PrivacyParameterError(
            f"noise shares must be an integer >= 0, got {shares!r}",
            expected="t, the number of nodes whose noise shares make up the secure sum "
            "(0: every node adds all of the noise)",
        )
    return shares


def noise_ratio(*, observer: Observer, shares: int) -> float:
    """The observer's noise multiplier divided by the secure sum's, for ``t = shares``."""
    t = _check_shares(shares)
    if Observer(observer) is Observer.FELLOW_MEMBER and t > 0:
        return math.sqrt(max(t - 1, 1) / t)
    return 1.0


def observed_noise_multiplier(*, observer: Observer, noise_multiplier: float, shares: int) -> float:
    """The noise multiplier ``observer`` faces on one node's record.

    Args:
        observer: Who looks.
        noise_multiplier: ``sigma``, the noise multiplier of the secure sum of ``t``
            shares (or of one node's update when ``shares`` is 0), > 0.
        shares: ``t``, the round's noise shares, >= 0.

    Raises:
        PrivacyParameterError: A parameter is out of range.
    """
    sigma = check_noise_multiplier(noise_multiplier)
    return sigma * noise_ratio(observer=observer, shares=shares)


def total_noise_for_observer(
    *, observer: Observer, observed_noise_multiplier: float, shares: int
) -> float:
    """The secure sum's noise multiplier that leaves ``observer`` facing the given one.

    The inverse of :func:`observed_noise_multiplier`: calibrate the observer's
    multiplier to the target epsilon, then have the ``t`` shares add up to this.
    """
    observed = check_noise_multiplier(observed_noise_multiplier)
    return observed / noise_ratio(observer=observer, shares=shares)


def strictest_observer(observers: Iterable[Observer]) -> Observer:
    """The observer among ``observers`` that faces the least noise (the most informed).

    Raises:
        PrivacyParameterError: ``observers`` is empty.
    """
    named = {Observer(o) for o in observers}
    if not named:
        raise PrivacyParameterError(
            "no observer named",
            expected=f"one or more of {', '.join(o.value for o in Observer)}",
        )
    return max(named, key=_ORDER.index)


def covered_by(observer: Observer) -> tuple[Observer, ...]:
    """Every observer a guarantee for ``observer`` also holds for (itself included)."""
    return _ORDER[: _ORDER.index(Observer(observer)) + 1]
