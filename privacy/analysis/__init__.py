"""Privacy analysis of DP-SGD: pure functions of numbers (no state, files or logging).

- ``rdp``: Rényi DP of the Poisson-subsampled Gaussian mechanism (Mironov, Talwar and
  Zhang 2019) and its conversion to (epsilon, delta)-DP (Balle et al. 2020, or Mironov
  2017); ``rdp_epsilon`` is the RDP epsilon of ``steps`` identical steps.
- ``gdp``: exact Gaussian-DP analysis of full-batch DP-SGD (Dong, Roth and Su 2022) and
  the membership-inference AUC bound it implies.
- ``parameters``: the checks of privacy parameters and ``PrivacyParameterError``.

All privacy numerics are keyword-only. The bookkeeping built on these functions (the
accountants, noise calibration, the persisted ledger) is the parent package
:mod:`privacy`.
"""

from __future__ import annotations

from privacy.analysis.gdp import (
    auc_bound,
    compose_mu,
    delta_for,
    epsilon_for_auc,
    epsilon_for_mu,
    mu_for,
    mu_for_auc,
    steps_mu,
)
from privacy.analysis.parameters import CONVERSIONS, PrivacyParameterError
from privacy.analysis.rdp import DEFAULT_ORDERS, compute_rdp, rdp_epsilon, rdp_to_epsilon

__all__ = [
    "CONVERSIONS",
    "DEFAULT_ORDERS",
    "PrivacyParameterError",
    "auc_bound",
    "compose_mu",
    "compute_rdp",
    "delta_for",
    "epsilon_for_auc",
    "epsilon_for_mu",
    "mu_for",
    "mu_for_auc",
    "rdp_epsilon",
    "rdp_to_epsilon",
    "steps_mu",
]
