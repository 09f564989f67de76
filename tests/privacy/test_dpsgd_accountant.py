"""The node's accountant: exact Gaussian DP for full-batch histories, RDP otherwise."""

from __future__ import annotations

import pytest

from privacy.analysis.gdp import epsilon_for_mu
from privacy.dpsgd_accountant import DPSGDAccountant
from privacy.rdp_accountant import RDPAccountant

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
