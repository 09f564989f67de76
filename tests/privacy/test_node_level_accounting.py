"""Node-level DP of DP-FedAvg: m of N nodes without replacement, replace-one neighbours.

Golden values: the two cases of the privacy review (issue 25, item 2) at delta 1e-5,
checked against independent computations (the exact Gaussian-DP curve, Opacus's PRV
accountant, dp-accounting's RDP bound for sampling without replacement, and a direct
numerical integration of the worst-case pair of datasets).
"""

from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from dp_accounting.pld import pld_privacy_accountant
from dp_accounting.rdp import rdp_privacy_accountant
from opacus.accountants import PRVAccountant
from scipy import integrate, stats

from privacy import DPSGDAccountant, NodeLevelAccountant, node_level_epsilon
from privacy.analysis import PrivacyParameterError, epsilon_for_mu

DELTA = 1e-5
REPLACE_ONE = dp_accounting.NeighboringRelation.REPLACE_ONE


def test_every_node_every_round_matches_the_exact_gdp_curve_and_dp_accounting() -> None:
    # Prepare: the review's N = m = 3 nodes, z = 5, T = 20 rounds.
    pld = pld_privacy_accountant.PLDAccountant(REPLACE_ONE)
    pld.compose(dp_accounting.GaussianDpEvent(5.0), 20)

    # Execute
    epsilon = node_level_epsilon(
        noise_multiplier=5.0, sampled=3, total_nodes=3, rounds=20, delta=DELTA
    )

    # Assert: replace-one moves the mean by 2C/m against noise zC/m: mu = 2 sqrt(T) / z.
    assert epsilon == pytest.approx(8.72, abs=0.005)
    assert epsilon == pytest.approx(epsilon_for_mu(mu=2 * math.sqrt(20) / 5, delta=DELTA))
    assert epsilon == pytest.approx(pld.get_epsilon(DELTA), rel=1e-4)


def test_every_node_every_round_was_charged_at_half_its_sensitivity_before() -> None:
    old = DPSGDAccountant()
    old.step(noise_multiplier=5.0, sample_rate=1.0, steps=20)

    new = node_level_epsilon(noise_multiplier=5.0, sampled=3, total_nodes=3, rounds=20, delta=DELTA)

    assert old.get_epsilon(DELTA) == pytest.approx(3.85, abs=0.005)  # the review's 3.85
    assert new > 2 * old.get_epsilon(DELTA)


def test_ten_of_a_hundred_nodes_matches_opacus_prv_and_sits_under_the_rdp_bound() -> None:
    # Prepare: the review's N = 100, m = 10, z = 1, T = 100. The dominating pair of
    # sampling without replacement under replace-one is a Poisson add/remove pair at
    # sensitivity 2: Opacus's PRV accountant computes it at noise z / 2.
    prv = PRVAccountant()
    prv.history = [(0.5, 0.1, 100)]
    rdp = rdp_privacy_accountant.RdpAccountant(neighboring_relation=REPLACE_ONE)
    rdp.compose(
        dp_accounting.SampledWithoutReplacementDpEvent(100, 10, dp_accounting.GaussianDpEvent(0.5)),
        100,
    )
    old = DPSGDAccountant()
    old.step(noise_multiplier=1.0, sample_rate=0.1, steps=100)

    # Execute
    epsilon = node_level_epsilon(
        noise_multiplier=1.0, sampled=10, total_nodes=100, rounds=100, delta=DELTA
    )

    # Assert
    assert epsilon == pytest.approx(31.37, abs=0.01)
    assert epsilon == pytest.approx(prv.get_epsilon(delta=DELTA), abs=0.05)
    # dp-accounting's RDP bound (Wang, Balle and Kasiviswanathan 2019) is the review's
    # "about 84": valid, but looser than the exact curve.
    assert rdp.get_epsilon(DELTA) == pytest.approx(84, abs=0.5)
    assert epsilon < rdp.get_epsilon(DELTA)
    # The old accounting (Poisson add/remove at z) charged the review's 7.90.
    assert old.get_epsilon(DELTA) == pytest.approx(7.90, abs=0.01)


def _hockey_stick(*, epsilon: float, q: float, z: float) -> float:
    """delta(epsilon) of one round on the worst-case datasets, by integration.

    Every node's update is u (norm C); the neighbour replaces node i's by -u. In units of
    C/m along u the mean is 0 on one side and, when node i is sampled (probability q),
    -2 on the other; the noise has std z.
    """
    p = stats.norm(0.0, z).pdf

    def q_pdf(x: float) -> float:
        return float((1 - q) * p(x) + q * stats.norm(-2.0, z).pdf(x))

    def forward(x: float) -> float:
        return max(0.0, float(p(x)) - math.exp(epsilon) * q_pdf(x))

    def backward(x: float) -> float:
        return max(0.0, q_pdf(x) - math.exp(epsilon) * float(p(x)))

    bound = 12 * z + 4
    grid = list(np.linspace(-bound, bound, 41))
    return max(
        integrate.quad(f, -bound, bound, points=grid, limit=400)[0] for f in (forward, backward)
    )


def test_one_round_is_tight_on_concrete_neighbouring_datasets() -> None:
    # Prepare / Execute: one round of 10 of 100 nodes at z = 1.
    epsilon = node_level_epsilon(
        noise_multiplier=1.0, sampled=10, total_nodes=100, rounds=1, delta=1e-3
    )

    # Assert: on these two datasets the mechanism reaches the accounted delta (tight),
    # and never exceeds it (a valid bound).
    reached = _hockey_stick(epsilon=epsilon, q=0.1, z=1.0)
    assert reached == pytest.approx(1e-3, rel=0.02)
    assert reached <= 1e-3 * 1.001


def test_identical_rounds_merge_and_mixed_rounds_compose() -> None:
    merged = NodeLevelAccountant()
    merged.step(noise_multiplier=1.0, sampled=10, total_nodes=100, rounds=30)
    merged.step(noise_multiplier=2.0, sampled=3, total_nodes=3, rounds=5)
    split = NodeLevelAccountant()
    for _ in range(3):
        split.step(noise_multiplier=1.0, sampled=10, total_nodes=100, rounds=10)
    split.step(noise_multiplier=2.0, sampled=3, total_nodes=3, rounds=5)

    assert merged.history == [(1.0, 10, 100, 30), (2.0, 3, 3, 5)]
    assert split.get_epsilon(DELTA) == merged.get_epsilon(DELTA)
    assert merged.get_epsilon(DELTA) > node_level_epsilon(
        noise_multiplier=1.0, sampled=10, total_nodes=100, rounds=30, delta=DELTA
    )
    assert NodeLevelAccountant().get_epsilon(DELTA) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"sampled": 4, "total_nodes": 3},
        {"sampled": 0, "total_nodes": 3},
        {"sampled": 2, "total_nodes": 3, "noise_multiplier": 0.0},
        {"sampled": 2, "total_nodes": 3, "rounds": -1},
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    params: dict[str, float] = {"noise_multiplier": 1.0, "rounds": 1, "delta": DELTA}
    params.update(kwargs)

    with pytest.raises(PrivacyParameterError, match="Expected:"):
        node_level_epsilon(**params)  # type: ignore[arg-type]
