"""Exact Gaussian-DP accounting of full-batch DP-SGD, checked against two peer libraries."""

from __future__ import annotations

import itertools
import math

import dp_accounting
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants.analysis.gdp import delta_eps_mu, eps_from_mu

from privacy.analysis import (
    PrivacyParameterError,
    auc_bound,
    compose_mu,
    delta_for,
    epsilon_for_auc,
    epsilon_for_mu,
    mu_for,
    mu_for_auc,
    rdp_epsilon,
    steps_mu,
)

DELTA = 1e-5


def _pld_epsilon(noise_multiplier: float, steps: int, delta: float) -> float:
    """Google dp-accounting's privacy-loss-distribution accountant (numerically tight)."""
    accountant = dp_accounting.pld.PLDAccountant(value_discretization_interval=1e-4)
    event = dp_accounting.GaussianDpEvent(noise_multiplier)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return float(accountant.get_epsilon(delta))


@pytest.mark.parametrize(
    ("sigma", "steps"), [(6.377, 100), (1.0, 1), (40.6, 100), (2.0, 20), (10.0, 500)]
)
def test_epsilon_matches_opacus_and_dp_accounting_pld(sigma: float, steps: int) -> None:
    mu = steps_mu(noise_multiplier=sigma, steps=steps)

    ours = epsilon_for_mu(mu=mu, delta=DELTA)

    assert ours == pytest.approx(eps_from_mu(mu=mu, delta=DELTA), rel=1e-6)
    assert ours == pytest.approx(_pld_epsilon(sigma, steps, DELTA), rel=5e-3)


def test_delta_curve_matches_opacus_where_it_does_not_overflow() -> None:
    for mu in (0.3, 1.0, 1.666, 3.0):
        for eps in (0.0, 0.5, 2.0, 8.0):
            assert delta_for(mu=mu, epsilon=eps) == pytest.approx(
                delta_eps_mu(eps=eps, mu=mu), rel=1e-9, abs=1e-300
            )


def test_exact_curve_is_under_rdp_at_the_demo_recipe() -> None:
    # Prepare: the demo's full-batch recipe, 100 steps at noise 6.377 (epsilon 8 by RDP).
    mu = steps_mu(noise_multiplier=6.377, steps=100)

    # Execute
    exact = epsilon_for_mu(mu=mu, delta=DELTA)

    # Assert: RDP overstates epsilon (7.99 against 7.43 exactly).
    rdp = rdp_epsilon(sample_rate=1.0, noise_multiplier=6.377, steps=100, delta=DELTA)
    assert rdp == pytest.approx(8.0, abs=0.011)
    assert exact == pytest.approx(7.43, abs=0.02)


def test_composition_is_the_root_sum_of_squares() -> None:
    split = compose_mu(
        [steps_mu(noise_multiplier=5.0, steps=30), steps_mu(noise_multiplier=5.0, steps=70)]
    )

    assert split == pytest.approx(steps_mu(noise_multiplier=5.0, steps=100))
    assert compose_mu([]) == 0.0


@settings(max_examples=60, deadline=None)
@given(
    epsilon=st.floats(min_value=0.05, max_value=30.0),
    delta=st.floats(min_value=1e-10, max_value=1e-2),
)
def test_mu_for_and_epsilon_for_mu_round_trip(epsilon: float, delta: float) -> None:
    mu = mu_for(epsilon=epsilon, delta=delta)

    assert delta_for(mu=mu, epsilon=epsilon) == pytest.approx(delta, rel=1e-6)
    assert epsilon_for_mu(mu=mu, delta=delta) == pytest.approx(epsilon, rel=1e-6, abs=1e-9)


def test_delta_is_monotone_and_stable_at_extremes() -> None:
    curve = [delta_for(mu=1.5, epsilon=e / 4) for e in range(0, 60)]

    assert all(a >= b for a, b in itertools.pairwise(curve))
    assert delta_for(mu=0.05, epsilon=50.0) == 0.0  # underflows to 0, never negative or NaN
    assert delta_for(mu=0.0, epsilon=1.0) == 0.0
    assert 0.99 < delta_for(mu=60.0, epsilon=1.0) <= 1.0
    assert epsilon_for_mu(mu=0.0, delta=DELTA) == 0.0


def test_auc_bound_of_the_demo_recipe() -> None:
    assert auc_bound(mu=10 / 6.377) == pytest.approx(0.866, abs=1e-3)
    assert auc_bound(mu=0.0) == 0.5
    assert math.isclose(auc_bound(mu=1.0), 0.7602, abs_tol=1e-4)


@settings(max_examples=40, deadline=None)
@given(auc=st.floats(min_value=0.501, max_value=0.999))
def test_mu_for_auc_inverts_the_auc_bound(auc: float) -> None:
    assert auc_bound(mu=mu_for_auc(max_auc=auc)) == pytest.approx(auc, abs=1e-12)


def test_epsilon_for_auc_golden_values_and_opacus() -> None:
    # sqrt(2) * Phi^-1(0.55) = sqrt(2) * 0.1256613...; the epsilon checked by Opacus's
    # independent GDP conversion at that mu.
    mu = mu_for_auc(max_auc=0.55)
    epsilon = epsilon_for_auc(max_auc=0.55, delta=DELTA)

    assert mu == pytest.approx(0.1777120, abs=1e-6)
    assert epsilon == pytest.approx(eps_from_mu(mu=mu, delta=DELTA), rel=1e-6)
    assert epsilon == pytest.approx(0.6376, abs=1e-4)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: mu_for_auc(max_auc=0.5), "max_auc must be"),
        (lambda: mu_for_auc(max_auc=1.0), "max_auc must be"),
        (lambda: epsilon_for_auc(max_auc=True, delta=DELTA), "max_auc must be"),
        (lambda: delta_for(mu=-1.0, epsilon=1.0), "mu must be"),
        (lambda: delta_for(mu=1.0, epsilon=-0.5), "epsilon must be"),
        (lambda: epsilon_for_mu(mu=math.nan, delta=DELTA), "mu must be"),
        (lambda: epsilon_for_mu(mu=1.0, delta=0.0), "delta must lie"),
        (lambda: mu_for(epsilon=0.0, delta=DELTA), "epsilon must be"),
        (lambda: steps_mu(noise_multiplier=0.0, steps=10), "noise_multiplier must be"),
        (lambda: steps_mu(noise_multiplier=1.0, steps=-1), "steps must be"),
    ],
)
def test_bad_parameters_are_clear_errors(call: object, match: str) -> None:
    with pytest.raises(PrivacyParameterError, match=match):
        call()  # type: ignore[operator]
