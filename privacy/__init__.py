"""Differential-privacy accounting of DP-SGD: the accountants and the node's ledger.

The pure maths (RDP and Gaussian-DP analysis, parameter checks and
``PrivacyParameterError``) is :mod:`privacy.analysis`; this package holds the
bookkeeping built on it:

- ``rdp_accountant``: ``RDPAccountant``, composition of heterogeneous DP-SGD steps.
- ``dpsgd_accountant``: ``DPSGDAccountant``, the ledger's accountant (exact Gaussian DP
  while every step is full-batch, RDP otherwise), and ``dpsgd_epsilon``, its epsilon of
  one DP-SGD run.
- ``noise_calibration``: ``noise_multiplier_for``, the smallest noise multiplier that
  meets a target epsilon.
- ``ledger``: ``PrivacyLedger``, the node's persisted record of every charge, with a
  budget that is enforced before a charge is recorded.
- ``ledger_file``: the ledger's file format (``LedgerEntry``, and ``ACCOUNTANT``, the
  label of the accountant behind every epsilon it records), validation and atomic
  writes.
- ``ledger_errors``: ``LedgerError`` (corrupt or mismatched file) and
  ``BudgetExceededError`` (a refused charge).
"""

from __future__ import annotations

from privacy.dpsgd_accountant import DPSGDAccountant, dpsgd_epsilon
from privacy.ledger import PrivacyLedger
from privacy.ledger_errors import BudgetExceededError, LedgerError
from privacy.ledger_file import ACCOUNTANT, LedgerEntry
from privacy.noise_calibration import noise_multiplier_for
from privacy.rdp_accountant import RDPAccountant

__all__ = [
    "ACCOUNTANT",
    "BudgetExceededError",
    "DPSGDAccountant",
    "LedgerEntry",
    "LedgerError",
    "PrivacyLedger",
    "RDPAccountant",
    "dpsgd_epsilon",
    "noise_multiplier_for",
]
