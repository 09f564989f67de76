"""Differential-privacy accounting of DP-SGD: the accountants and the node's ledger.

The pure maths (RDP and Gaussian-DP analysis, parameter checks and
``PrivacyParameterError``) is :mod:`privacy.analysis`; this package holds the
bookkeeping built on it:

- ``rdp_accountant``: ``RDPAccountant``, composition of heterogeneous DP-SGD steps.
- ``dpsgd_accountant``: ``DPSGDAccountant`` (exact Gaussian DP while every step is
  full-batch, RDP otherwise), and ``dpsgd_epsilon``, its epsilon of one DP-SGD run: what
  the trainer reports and the noise calibration meets (an upper bound on the ledger's).
- ``pld_accountant``: ``PLDAccountant``, the ledger's accountant (exact Gaussian DP while
  every step is full-batch, privacy loss distributions for any other history).
- ``node_level_accounting``: ``NodeLevelAccountant`` and ``node_level_epsilon``, the
  coordinator's node-level DP (DP-FedAvg, m of N nodes without replacement,
  replace-one neighbours).
- ``observers``: ``Observer`` and the noise multiplier each observer faces under
  distributed DP (a fellow member knows its own noise share).
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
from privacy.ledger_errors import DEFAULT_UNIT, BudgetExceededError, LedgerError
from privacy.ledger_file import ACCOUNTANT, LedgerEntry
from privacy.node_level_accounting import (
    NEIGHBOUR_RELATION,
    NODE_LEVEL_ACCOUNTANT,
    NODE_LEVEL_SAMPLING,
    NODE_LEVEL_UNIT,
    NodeLevelAccountant,
    node_level_epsilon,
)
from privacy.noise_calibration import noise_multiplier_for
from privacy.observers import (
    Observer,
    covered_by,
    noise_ratio,
    observed_noise_multiplier,
    strictest_observer,
    total_noise_for_observer,
)
from privacy.pld_accountant import PLDAccountant
from privacy.rdp_accountant import RDPAccountant

__all__ = [
    "ACCOUNTANT",
    "DEFAULT_UNIT",
    "NEIGHBOUR_RELATION",
    "NODE_LEVEL_ACCOUNTANT",
    "NODE_LEVEL_SAMPLING",
    "NODE_LEVEL_UNIT",
    "BudgetExceededError",
    "DPSGDAccountant",
    "LedgerEntry",
    "LedgerError",
    "NodeLevelAccountant",
    "Observer",
    "PLDAccountant",
    "PrivacyLedger",
    "RDPAccountant",
    "covered_by",
    "dpsgd_epsilon",
    "node_level_epsilon",
    "noise_multiplier_for",
    "noise_ratio",
    "observed_noise_multiplier",
    "strictest_observer",
    "total_noise_for_observer",
]
