from __future__ import annotations

import math

import dp_accounting
import numpy as np
import pytest
from opacus.accountants import RDPAccountant as OpacusRDPAccountant
from opacus.accountants.analysis import rdp as opacus_rdp
from scipy import integrate, stats

from embedding_core.errors import FedembedError
from privacy.analysis import (
    DEFAULT_ORDERS,
    PrivacyParameterError,
    compute_rdp,
    rdp_epsilon,
    rdp_to_epsilon,
)

# TF Privacy's MNIST tutorial: 60,000 records, batch 256, noise 1.1, 60 epochs, delta 1e-5,
# steps counted as TF Privacy's compute_dp_sgd_privacy does.
MNIST_N = 60_000
MNIST_BATCH = 256
MNIST_RATE = MNIST_BATCH / MNIST_N
MNIST_NOISE = 1.1
MNIST_STEPS = math.ceil(60 * MNIST_N / MNIST_BATCH)  # TF Privacy: int(math.ceil(...))
MNIST_DELTA = 1e-5


def _opacus_epsilon(
    *, rate: float, noise: float, steps: int, delta: float, orders: list[float] | None = None
) -> float:
    accountant = OpacusRDPAccountant()
    accountant.history = [(noise, rate, steps)]
    return float(accountant.get_epsilon(delta, alphas=orders))


def _dp_accounting_epsilon(
    *, rate: float, noise: float, steps: int, delta: float, orders: list[float] | None = None
) -> float:
    accountant = dp_accounting.rdp.RdpAccountant(orders=orders)
    event = dp_accounting.PoissonSampledDpEvent(rate, dp_accounting.GaussianDpEvent(noise))
    accountant.compose(event, steps)
    return float(accountant.get_epsilon(delta))


# ------------------------------------------------------------------------ golden numbers


def test_mnist_golden_epsilon_matches_opacus_dp_accounting_and_published_value() -> None:
    opacus_eps = _opacus_epsilon(
        rate=MNIST_RATE, noise=MNIST_NOISE, steps=MNIST_STEPS, delta=MNIST_DELTA
    )
    google_eps = _dp_accounting_epsilon(
        rate=MNIST_RATE, noise=MNIST_NOISE, steps=MNIST_STEPS, delta=MNIST_DELTA
    )

    ours = rdp_epsilon(
        sample_rate=MNIST_RATE, noise_multiplier=MNIST_NOISE, steps=MNIST_STEPS, delta=MNIST_DELTA
    )

    assert MNIST_STEPS == 14_063
    assert ours == pytest.approx(opacus_eps, rel=0.01)
    assert ours == pytest.approx(google_eps, rel=0.01)
    assert ours == pytest.approx(2.60, abs=0.03)


def test_mnist_golden_epsilon_with_classic_conversion_matches_tf_privacy() -> None:
    ours = rdp_epsilon(
        sample_rate=MNIST_RATE,
        noise_multiplier=MNIST_NOISE,
        steps=MNIST_STEPS,
        delta=MNIST_DELTA,
        conversion="classic",
    )

    assert ours == pytest.approx(3.01, rel=0.01)  # TF Privacy's published number


# ---------------------------------------------------------- agreement with the references

GRID = [
    # (sample_rate, noise_multiplier, steps, delta)
    (1.0, 1.0, 10, 1e-5),
    (1.0, 4.0, 200, 1e-6),
    (0.5, 0.8, 30, 1e-5),
    (0.1, 1.5, 500, 1e-3),
    (0.01, 0.7, 2_000, 1e-5),
    (256 / 60_000, 1.1, 14_063, 1e-5),
    (1e-4, 2.0, 10_000, 1e-5),
    (1e-6, 0.6, 100_000, 1e-7),
]


@pytest.mark.parametrize(("rate", "noise", "steps", "delta"), GRID)
def test_epsilon_agrees_with_opacus_and_dp_accounting(
    rate: float, noise: float, steps: int, delta: float
) -> None:
    orders = list(DEFAULT_ORDERS)
    opacus_eps = _opacus_epsilon(rate=rate, noise=noise, steps=steps, delta=delta, orders=orders)
    google_eps = _dp_accounting_epsilon(
        rate=rate, noise=noise, steps=steps, delta=delta, orders=orders
    )

    ours = rdp_epsilon(sample_rate=rate, noise_multiplier=noise, steps=steps, delta=delta)

    assert ours > 0
    assert ours == pytest.approx(opacus_eps, rel=0.01)
    assert ours == pytest.approx(google_eps, rel=0.01)


# Opacus adds the series terms one by one and loses relative precision when the RDP is
# tiny (rate 1e-5: errors of 0.2 %); tiny rates are checked by integration below instead.
@pytest.mark.parametrize(("rate", "noise"), [(0.004, 1.1), (0.3, 0.9), (0.05, 2.0)])
def test_rdp_curve_agrees_with_opacus_at_every_order(rate: float, noise: float) -> None:
    reference = np.asarray(
        opacus_rdp.compute_rdp(q=rate, noise_multiplier=noise, steps=1, orders=DEFAULT_ORDERS)
    )
    # dp-accounting 0.6 sums the absolute values of the fractional-order series: an upper
    # bound, not the exact value, so it is only checked to lie above.
    google = dp_accounting.rdp.RdpAccountant(orders=list(DEFAULT_ORDERS))
    google.compose(
        dp_accounting.PoissonSampledDpEvent(rate, dp_accounting.GaussianDpEvent(noise)), 1
    )
    upper = google.rdp

    ours = compute_rdp(sample_rate=rate, noise_multiplier=noise, steps=1, orders=DEFAULT_ORDERS)

    np.testing.assert_allclose(ours, reference, rtol=1e-3)
    assert np.all(ours <= upper * (1 + 1e-9))


@pytest.mark.parametrize(
    ("rate", "noise", "order"),
    [
        (0.004, 1.1, 1.1),
        (0.004, 1.1, 8.1),
        (0.3, 0.9, 1.8),
        (0.3, 0.9, 4.0),
        (0.05, 2.0, 25.5),
        (1e-5, 3.0, 1.2),
        (1e-5, 3.0, 2.0),
    ],
)
def test_rdp_matches_numerical_integration(rate: float, noise: float, order: float) -> None:
    # A_alpha = E_{z ~ N(0, s^2)}[(1 + q x(z))^alpha] with x = exp((2z - 1) / (2 s^2)) - 1
    # and E[x] = 0, so A_alpha - 1 = E[(1 + q x)^alpha - 1 - alpha q x]: integrating that
    # avoids cancellation and keeps tiny values precise.
    def integrand(z: float) -> float:
        x = math.expm1((2 * z - 1) / (2 * noise**2))
        excess = math.expm1(order * math.log1p(rate * x)) - order * rate * x
        return float(stats.norm.pdf(z, scale=noise) * excess)

    a_minus_one, _ = integrate.quad(
        integrand,
        -30 * noise,
        order + 30 * noise,
        points=[0.0, 1.0, order],
        epsabs=0,
        epsrel=1e-9,
        limit=1000,
    )
    expected = math.log1p(a_minus_one) / (order - 1)

    (ours,) = compute_rdp(sample_rate=rate, noise_multiplier=noise, steps=1, orders=[order])

    assert ours == pytest.approx(expected, rel=1e-6)


def test_full_batch_is_the_plain_gaussian_mechanism() -> None:
    orders = [1.5, 2.0, 10.0, 32.5]

    rdp = compute_rdp(sample_rate=1.0, noise_multiplier=2.0, steps=7, orders=orders)

    np.testing.assert_allclose(rdp, [7 * a / (2 * 2.0**2) for a in orders])


# ------------------------------------------------------------------------ properties


def test_zero_steps_spend_nothing() -> None:
    eps = rdp_epsilon(sample_rate=0.1, noise_multiplier=1.0, steps=0, delta=1e-5)

    assert eps == 0.0


def test_epsilon_grows_with_steps_and_rate_and_shrinks_with_noise() -> None:
    base = {"sample_rate": 0.01, "noise_multiplier": 1.0, "steps": 1_000, "delta": 1e-5}

    eps = rdp_epsilon(**base)  # type: ignore[arg-type]
    more_steps = rdp_epsilon(**{**base, "steps": 2_000})  # type: ignore[arg-type]
    higher_rate = rdp_epsilon(**{**base, "sample_rate": 0.02})  # type: ignore[arg-type]
    more_noise = rdp_epsilon(**{**base, "noise_multiplier": 1.5})  # type: ignore[arg-type]

    assert more_steps > eps
    assert higher_rate > eps
    assert more_noise < eps


def test_balle2020_is_never_looser_than_classic() -> None:
    rdp = compute_rdp(sample_rate=0.02, noise_multiplier=0.9, steps=3_000)

    balle, balle_order = rdp_to_epsilon(orders=DEFAULT_ORDERS, rdp=rdp, delta=1e-5)
    classic, _ = rdp_to_epsilon(orders=DEFAULT_ORDERS, rdp=rdp, delta=1e-5, conversion="classic")

    assert 0 < balle < classic
    assert balle_order in DEFAULT_ORDERS


def test_rdp_is_additive_over_steps() -> None:
    one = compute_rdp(sample_rate=0.05, noise_multiplier=1.3, steps=1)

    many = compute_rdp(sample_rate=0.05, noise_multiplier=1.3, steps=250)

    np.testing.assert_allclose(many, 250 * one)


# ------------------------------------------------------------------------ validation


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"sample_rate": 0.0}, "(0, 1]"),
        ({"sample_rate": 1.5}, "(0, 1]"),
        ({"noise_multiplier": 0.0}, "> 0"),
        ({"noise_multiplier": -1.0}, "> 0"),
        ({"noise_multiplier": math.inf}, "> 0"),
        ({"steps": -1}, ">= 0"),
        ({"steps": 2.5}, "integer"),
        ({"delta": 0.0}, "0 < delta < 1"),
        ({"delta": 1.0}, "0 < delta < 1"),
        ({"conversion": "moments"}, "balle2020"),
        ({"orders": [1.0, 2.0]}, "alpha > 1"),
        ({"orders": []}, "alpha > 1"),
    ],
)
def test_bad_parameters_say_what_was_expected(kwargs: dict[str, object], expected: str) -> None:
    params: dict[str, object] = {
        "sample_rate": 0.01,
        "noise_multiplier": 1.0,
        "steps": 10,
        "delta": 1e-5,
        **kwargs,
    }

    with pytest.raises(PrivacyParameterError) as info:
        rdp_epsilon(**params)  # type: ignore[arg-type]

    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, FedembedError)
    assert "Expected:" in str(info.value)
    assert expected in str(info.value)


def test_privacy_numerics_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        compute_rdp(0.01, 1.0, 10)  # type: ignore[misc]


def test_rdp_and_orders_must_have_the_same_length() -> None:
    with pytest.raises(PrivacyParameterError, match="differ in length"):
        rdp_to_epsilon(orders=[2.0, 3.0], rdp=[0.1], delta=1e-5)
