from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import RDPAccountant as OpacusRDPAccountant

from privacy import RDPAccountant
from privacy.analysis import DEFAULT_ORDERS, PrivacyParameterError, compute_rdp, rdp_to_epsilon

HETEROGENEOUS = [(1.1, 0.004, 500), (0.8, 0.02, 120), (2.0, 1.0, 3), (1.1, 0.004, 40)]


def test_heterogeneous_composition_is_the_sum_of_rdp_curves() -> None:
    accountant = RDPAccountant()
    expected = np.zeros(len(DEFAULT_ORDERS))
    for noise, rate, steps in HETEROGENEOUS:
        expected += compute_rdp(sample_rate=rate, noise_multiplier=noise, steps=steps)

    for noise, rate, steps in HETEROGENEOUS:
        accountant.step(noise_multiplier=noise, sample_rate=rate, steps=steps)

    np.testing.assert_allclose(accountant.get_rdp(), expected, rtol=1e-12)
    reference_eps, _ = rdp_to_epsilon(orders=DEFAULT_ORDERS, rdp=expected, delta=1e-5)
    assert accountant.get_epsilon(1e-5) == pytest.approx(reference_eps, rel=1e-12)
    assert accountant.history == HETEROGENEOUS
    assert accountant.mechanism == "rdp"


def test_heterogeneous_composition_agrees_with_opacus() -> None:
    reference = OpacusRDPAccountant()
    reference.history = list(HETEROGENEOUS)
    accountant = RDPAccountant()

    for noise, rate, steps in HETEROGENEOUS:
        accountant.step(noise_multiplier=noise, sample_rate=rate, steps=steps)

    expected = reference.get_epsilon(1e-5, alphas=list(DEFAULT_ORDERS))
    assert accountant.get_epsilon(1e-5) == pytest.approx(expected, rel=0.01)


def test_consecutive_identical_steps_merge_into_one_item() -> None:
    accountant = RDPAccountant()

    for _ in range(5):
        accountant.step(noise_multiplier=1.0, sample_rate=0.01)
    accountant.step(noise_multiplier=1.0, sample_rate=0.01, steps=10)
    accountant.step(noise_multiplier=1.2, sample_rate=0.01, steps=3)
    accountant.step(noise_multiplier=1.0, sample_rate=0.01, steps=0)

    assert accountant.history == [(1.0, 0.01, 15), (1.2, 0.01, 3)]


def test_empty_accountant_spends_nothing() -> None:
    assert RDPAccountant().get_epsilon(1e-5) == 0.0


def test_bad_step_is_refused_and_leaves_history_alone() -> None:
    accountant = RDPAccountant()
    accountant.step(noise_multiplier=1.0, sample_rate=0.01, steps=2)

    with pytest.raises(PrivacyParameterError, match="sample_rate"):
        accountant.step(noise_multiplier=1.0, sample_rate=2.0, steps=2)

    assert accountant.history == [(1.0, 0.01, 2)]


def test_from_dict_rejects_another_mechanism() -> None:
    with pytest.raises(PrivacyParameterError, match="not an RDP accountant"):
        RDPAccountant.from_dict({"mechanism": "prv", "history": []})


_items = st.tuples(
    st.floats(min_value=0.1, max_value=50.0, allow_nan=False),
    st.floats(min_value=1e-6, max_value=1.0, allow_nan=False, exclude_min=False),
    st.integers(min_value=0, max_value=10**6),
)


@settings(max_examples=50, deadline=None)
@given(items=st.lists(_items, max_size=12))
def test_to_dict_from_dict_round_trip_through_json(items: list[tuple[float, float, int]]) -> None:
    accountant = RDPAccountant()
    for noise, rate, steps in items:
        accountant.step(noise_multiplier=noise, sample_rate=rate, steps=steps)

    restored = RDPAccountant.from_dict(json.loads(json.dumps(accountant.to_dict())))

    assert restored.history == accountant.history
    assert restored.orders == accountant.orders
    assert restored.to_dict() == accountant.to_dict()
