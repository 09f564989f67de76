"""Differential-privacy accounting of a member node's DP-SGD training.

- ``rdp``: pure RDP analysis of the Poisson-subsampled Gaussian mechanism (Mironov,
  Talwar and Zhang 2019) and RDP-to-(epsilon, delta) conversion (Balle et al. 2020, or
  Mironov 2017).
- ``privacy_params``: the privacy-parameter checks and ``PrivacyParameterError``.
- ``noise_calibration``: ``noise_multiplier_for``, the smallest noise multiplier that
  meets a target epsilon.
- ``gdp``: exact Gaussian-DP analysis of full-batch DP-SGD (Dong, Roth and Su 2022).
- ``accountant``: ``RDPAccountant``, composition of heterogeneous DP-SGD steps.
- ``dpsgd_accountant``: ``DPSGDAccountant``, the ledger's accountant: exact GDP while
  every step is full-batch, RDP otherwise.
- ``ledger``: ``PrivacyLedger``, the node's persisted record of every charge, with a
  budget that is enforced before a charge is recorded.
- ``ledger_file``: the ledger's file format (``LedgerEntry``), validation and atomic
  writes.
- ``ledger_errors``: ``LedgerError`` (corrupt or mismatched file) and
  ``BudgetExceededError`` (a refused charge).
"""

from __future__ import annotations

from privacy.analysis.gdp import auc_bound, epsilon_for_mu, mu_for, steps_mu
from privacy.analysis.rdp import DEFAULT_ORDERS, compute_rdp, epsilon_for, rdp_to_epsilon
from privacy.dpsgd_accountant import DPSGDAccountant
from privacy.ledger import PrivacyLedger
from privacy.ledger_errors import BudgetExceededError, LedgerError
from privacy.ledger_file import LedgerEntry
from privacy.noise_calibration import noise_multiplier_for
from privacy.privacy_params import CONVERSIONS, PrivacyParameterError
from privacy.rdp_accountant import RDPAccountant

__all__ = [
    "CONVERSIONS",
    "DEFAULT_ORDERS",
    "BudgetExceededError",
    "DPSGDAccountant",
    "LedgerEntry",
    "LedgerError",
    "PrivacyLedger",
    "PrivacyParameterError",
    "RDPAccountant",
    "auc_bound",
    "compute_rdp",
    "epsilon_for",
    "epsilon_for_mu",
    "mu_for",
    "noise_multiplier_for",
    "rdp_to_epsilon",
    "steps_mu",
]
