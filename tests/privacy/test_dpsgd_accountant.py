"""The node's accountant: exact Gaussian DP for full-batch histories, RDP otherwise."""

from __future__ import annotations

import pytest

from privacy import DPSGDAccountant, RDPAccountant, dpsgd_epsilon
from privacy.analysis import PrivacyParameterError, epsilon_for_mu, rdp_epsilon, steps_mu

DELTA = 1e-5


def _both(history: list[tuple[float, float, int]]) -> tuple[DPSGDAccountant, RDPAccountant]:
    ours, rdp = DPSGDAccountant(), RDPAccountant()
    for sigma, rate, steps in history:
        ours.step(noise_multiplier=sigma, sample_rate=rate, steps=steps)
        rdp.step(noise_multiplier=sigma, sample_rate=rate, steps=steps)
    return ours, rdp


def test_full_batch_history_is_read_off_the_exact_gdp_curve() -> None:
    # Prepare: two runs of full-batch steps at different noise levels.
    ours, rdp = _both([(6.0, 1.0, 60), (4.0, 1.0, 10)])

    # Execute
    epsilon = ours.get_epsilon(DELTA)

    # Assert: mu = sqrt(60 / 36 + 10 / 16); tighter than RDP's bound on the same history.
    mu = (60 / 36 + 10 / 16) ** 0.5
    assert ours.get_mu() == pytest.approx(mu)
    assert epsilon == pytest.approx(epsilon_for_mu(mu=mu, delta=DELTA), rel=1e-12)
    assert epsilon < rdp.get_epsilon(DELTA)
    assert ours.is_full_batch()


def test_one_subsampled_charge_turns_the_whole_history_to_rdp() -> None:
    ours, rdp = _both([(6.0, 1.0, 60), (1.1, 0.01, 200)])

    assert not ours.is_full_batch()
    assert ours.get_mu() is None
    assert ours.get_epsilon(DELTA) == rdp.get_epsilon(DELTA)


def test_empty_history_spends_nothing() -> None:
    assert DPSGDAccountant().get_epsilon(DELTA) == 0.0


def test_copy_and_state_round_trip_keep_the_class_and_history() -> None:
    ours, _ = _both([(6.0, 1.0, 60)])

    copied = ours.copy()
    copied.step(noise_multiplier=6.0, sample_rate=1.0, steps=40)
    restored = DPSGDAccountant.from_dict(ours.to_dict())

    assert isinstance(copied, DPSGDAccountant)
    assert ours.history == [(6.0, 1.0, 60)]  # the copy is independent
    assert isinstance(restored, DPSGDAccountant)
    assert restored.get_epsilon(DELTA) == ours.get_epsilon(DELTA)
    # The state is an RDP history: either class reads the other's.
    assert RDPAccountant.from_dict(ours.to_dict()).history == ours.history


def test_dpsgd_epsilon_is_exact_at_full_batch_and_rdp_below() -> None:
    # Execute: one run at sample rate 1, one subsampled.
    full_batch = dpsgd_epsilon(noise_multiplier=6.0, sample_rate=1.0, steps=100, delta=DELTA)
    sampled = dpsgd_epsilon(noise_multiplier=1.1, sample_rate=0.01, steps=500, delta=DELTA)

    # Assert: the exact Gaussian-DP curve (under RDP's bound) at rate 1, RDP below it.
    exact = epsilon_for_mu(mu=steps_mu(noise_multiplier=6.0, steps=100), delta=DELTA)
    rdp_full_batch = rdp_epsilon(sample_rate=1.0, noise_multiplier=6.0, steps=100, delta=DELTA)
    assert full_batch == pytest.approx(exact, rel=1e-12)
    assert full_batch < rdp_full_batch
    assert sampled == rdp_epsilon(sample_rate=0.01, noise_multiplier=1.1, steps=500, delta=DELTA)
    assert dpsgd_epsilon(noise_multiplier=6.0, sample_rate=1.0, steps=0, delta=DELTA) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"delta": 1.0}, "delta"),
        ({"conversion": "moments"}, "conversion"),
    ],
)
def test_dpsgd_epsilon_refuses_bad_parameters(kwargs: dict[str, object], match: str) -> None:
    params: dict[str, object] = {
        "noise_multiplier": 2.0,
        "sample_rate": 1.0,
        "steps": 10,
        "delta": DELTA,
        **kwargs,
    }

    with pytest.raises(PrivacyParameterError, match=match):
        dpsgd_epsilon(**params)  # type: ignore[arg-type]
