"""Errors of the privacy ledger: a file that cannot be trusted, and a refused charge.

- ``LedgerError``: the ledger file is corrupt, has disappeared, or belongs to another
  node, delta or privacy unit (raised by :mod:`privacy.ledger_file` and
  :mod:`privacy.ledger`).
- ``BudgetExceededError``: a charge would take the node's privacy spending past its
  budget; it is raised before anything is recorded.

``DEFAULT_UNIT`` is the privacy unit a ledger and its budget errors state epsilons in
unless told otherwise.
"""

from __future__ import annotations

from typing import Final

from embedding_core.errors import FedembedError

__all__ = [
    "DEFAULT_UNIT",
    "BudgetExceededError",
    "LedgerError",
]

DEFAULT_UNIT: Final = "query or person (all its interaction records)"
"""DP-SGD clips and samples all records of one query, or of one person where the data names
people, as one unit (:mod:`dp_training.privacy_unit`); a ledger written for another unit
does not open, because epsilons of different units do not compose."""


class LedgerError(FedembedError):
    """The ledger file is corrupt, or does not match this node's settings."""


class BudgetExceededError(FedembedError):
    """A charge would take the node's privacy spending past its budget.

    Attributes:
        node_id: The node whose budget it is.
        spent_epsilon: Epsilon spent before the refused charge.
        requested_epsilon: Epsilon the node would reach with the charge.
        max_epsilon: The node's budget.
        delta: The delta all these epsilons are stated at.
    """

    def __init__(
        self,
        *,
        node_id: str,
        spent_epsilon: float,
        requested_epsilon: float,
        max_epsilon: float,
        delta: float,
        unit: str = DEFAULT_UNIT,
    ) -> None:
        self.node_id = node_id
        self.spent_epsilon = spent_epsilon
        self.requested_epsilon = requested_epsilon
        self.max_epsilon = max_epsilon
        self.delta = delta
        self.unit = unit
        super().__init__(
            f"privacy budget exceeded on node {node_id!r}: it has spent epsilon "
            f"{spent_epsilon:.4f} and this round would reach epsilon {requested_epsilon:.4f}, "
            f"over its budget of {max_epsilon:.4f} (delta={delta:g}, unit: one {unit}); "
            "nothing was charged",
            expected=f"a round whose charge keeps epsilon at or below {max_epsilon:.4f}",
            fix="raise the privacy budget (max_epsilon) in the node config if the "
            "consortium agrees, or stop training on this node (a larger noise multiplier, "
            "fewer steps or a smaller sample rate spend less per round)",
        )
