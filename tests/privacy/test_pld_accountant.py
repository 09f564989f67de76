"""``PLDAccountant``: exact GDP for full-batch histories, merged PLDs for any other."""

from __future__ import annotations

import math

import pytest

from privacy import PLDAccountant
from privacy.analysis import PrivacyParameterError, epsilon_for_mu, steps_mu

DELTA = 1e-5


def test_a_full_batch_history_reads_the_exact_gdp_curve() -> None:
    accountant = PLDAccountant()
    accountant.step(noise_multiplier=6.0, sample_rate=1.0, steps=60)
    accountant.step(noise_multiplier=3.0, sample_rate=1.0, steps=10)

    mu = math.sqrt(60 / 36 + 10 / 9)
    assert accountant.is_full_batch()
    assert accountant.get_mu() == pytest.approx(mu)
    assert accountant.get_epsilon(DELTA) == pytest.approx(epsilon_for_mu(mu=mu, delta=DELTA))


def test_identical_charges_merge_whatever_their_order() -> None:
    # Prepare: the same charges, one by one and interleaved, or as two big events.
    one_by_one = PLDAccountant()
    for _ in range(20):
        one_by_one.step(noise_multiplier=1.0, sample_rate=0.05, steps=10)
        one_by_one.step(noise_multiplier=5.0, sample_rate=1.0, steps=1)
    merged = PLDAccountant()
    merged.step(noise_multiplier=5.0, sample_rate=1.0, steps=20)
    merged.step(noise_multiplier=1.0, sample_rate=0.05, steps=200)

    # Execute / Assert: one self-composed event per setting, so the same epsilon exactly.
    assert one_by_one.get_epsilon(DELTA) == merged.get_epsilon(DELTA)
    assert len(one_by_one.history) == 40


def test_a_subsampled_step_costs_less_than_a_full_batch_one_and_copies_are_independent() -> None:
    base = PLDAccountant()
    base.step(noise_multiplier=1.0, sample_rate=0.01, steps=100)
    copy = base.copy()
    copy.step(noise_multiplier=1.0, sample_rate=1.0, steps=1)

    assert len(base.history) == 1
    assert not copy.is_full_batch()
    assert base.get_epsilon(DELTA) < copy.get_epsilon(DELTA)
    assert copy.get_epsilon(DELTA) > epsilon_for_mu(
        mu=steps_mu(noise_multiplier=1.0, steps=1), delta=DELTA
    )
    assert PLDAccountant().get_epsilon(DELTA) == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"noise_multiplier": 0.0, "sample_rate": 0.1, "steps": 1},
        {"noise_multiplier": 1.0, "sample_rate": 1.5, "steps": 1},
        {"noise_multiplier": 1.0, "sample_rate": 0.1, "steps": -1},
    ],
)
def test_bad_steps_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(PrivacyParameterError):
        PLDAccountant().step(**kwargs)  # type: ignore[arg-type]
