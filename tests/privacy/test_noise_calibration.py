"""Noise calibration: the smallest noise multiplier that meets a target epsilon."""

from __future__ import annotations

import math

import pytest
from opacus.accountants.utils import get_noise_multiplier as opacus_noise_multiplier

from privacy import dpsgd_epsilon, noise_multiplier_for
from privacy.analysis import auc_bound, epsilon_for_auc, epsilon_for_mu, rdp_epsilon, steps_mu

# TF Privacy's MNIST tutorial: 60,000 records, batch 256, noise 1.1, 60 epochs, delta 1e-5.
MNIST_RATE = 256 / 60_000
MNIST_NOISE = 1.1
MNIST_STEPS = math.ceil(60 * 60_000 / 256)
DELTA = 1e-5


@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning")
@pytest.mark.parametrize(
    ("target", "rate", "steps"), [(2.6, MNIST_RATE, MNIST_STEPS), (1.0, 0.01, 1_000)]
)
def test_noise_multiplier_round_trips_and_agrees_with_opacus(
    target: float, rate: float, steps: int
) -> None:
    # Execute
    sigma = noise_multiplier_for(
        target_epsilon=target, target_delta=DELTA, sample_rate=rate, steps=steps
    )

    # Assert: subsampled, the ledger's accountant is RDP, as Opacus's calibration.
    reached = rdp_epsilon(sample_rate=rate, noise_multiplier=sigma, steps=steps, delta=DELTA)
    reference = opacus_noise_multiplier(
        target_epsilon=target, target_delta=DELTA, sample_rate=rate, steps=steps
    )
    assert target - 0.01 <= reached <= target
    assert sigma == pytest.approx(reference, rel=0.02)


def test_noise_multiplier_for_mnist_target_is_about_one_point_one() -> None:
    sigma = noise_multiplier_for(
        target_epsilon=2.6, target_delta=DELTA, sample_rate=MNIST_RATE, steps=MNIST_STEPS
    )

    assert sigma == pytest.approx(MNIST_NOISE, rel=0.02)


def test_full_batch_is_calibrated_on_the_exact_curve() -> None:
    # Prepare: the demo's full-batch recipe, 100 steps at epsilon 8.
    recipe = {"target_epsilon": 8.0, "target_delta": DELTA, "sample_rate": 1.0, "steps": 100}

    # Execute
    sigma_rdp = noise_multiplier_for(**recipe, exact_full_batch=False)  # type: ignore[arg-type]
    sigma_exact = noise_multiplier_for(**recipe)  # type: ignore[arg-type]

    # Assert: RDP overstates epsilon, so less noise meets 8 on the exact curve.
    assert sigma_rdp == pytest.approx(6.38, abs=0.01)
    assert sigma_exact == pytest.approx(6.00, abs=0.01)
    reached = dpsgd_epsilon(noise_multiplier=sigma_exact, sample_rate=1.0, steps=100, delta=DELTA)
    assert reached == epsilon_for_mu(
        mu=steps_mu(noise_multiplier=sigma_exact, steps=100), delta=DELTA
    )
    assert 8.0 - 0.01 <= reached <= 8.0


def test_calibrating_to_the_auc_epsilon_keeps_the_auc_bound() -> None:
    epsilon = epsilon_for_auc(max_auc=0.55, delta=DELTA)

    sigma = noise_multiplier_for(
        target_epsilon=epsilon, target_delta=DELTA, sample_rate=1.0, steps=100
    )

    assert auc_bound(mu=steps_mu(noise_multiplier=sigma, steps=100)) <= 0.55


def test_unreachable_target_is_a_clear_value_error() -> None:
    with pytest.raises(ValueError, match="cannot be reached") as info:
        noise_multiplier_for(
            target_epsilon=0.01, target_delta=DELTA, sample_rate=1.0, steps=1_000_000
        )

    assert "raise target_epsilon" in str(info.value)
