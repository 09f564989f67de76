"""What every attack returns, and the protections an attack is run against.

An attack is fitted on public auxiliary data only, then attacks a target (protected or
raw embeddings, or a released adapter) and returns an :class:`AttackReport`: its metrics,
its threat model in words, and how long it ran. Protections transform embeddings the way
a deployment would before anyone else sees them; the same attack runs against each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

__all__ = ["AttackReport", "EmbeddingProtection"]


@dataclass(frozen=True)
class AttackReport:
    """The outcome of one attack against one target.

    Attributes:
        attack: The attack's name (its module name, e.g. ``"bow_inversion"``).
        target: What was attacked (e.g. ``"banking77-test raw"``, ``"dcpe beta=1"``).
        threat_model: Who the attacker is and what they know, in one or two sentences.
        metrics: Numbers (fractions, AUCs, counts) keyed by metric name.
        seconds: Wall time of fitting plus attacking.
        details: Anything else worth showing (parameters, sample sizes, curves).
    """

    attack: str
    target: str
    threat_model: str
    metrics: dict[str, float]
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


class EmbeddingProtection(Protocol):
    """A transformation applied to embeddings before they leave their owner.

    The protections of :mod:`attacks.protections` (raw, noise, DCPE, keyed rotation, CKKS
    search's store view) satisfy it; an attack runs against ``protect``'s output.
    """

    @property
    def name(self) -> str:
        """Short label for tables and plots, e.g. ``"gaussian sigma=0.05"``."""
        ...

    def protect(self, vectors: np.ndarray) -> np.ndarray:
        """Protected copies of ``vectors`` (n, d); the input is not changed."""
        ...
