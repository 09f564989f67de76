"""Attribute inference against a protection: the static and the adaptive attacker.

The attack is Song and Raghunathan's sensitive-attribute inference ("Information Leakage
in Embedding Models", ACM CCS 2020, Section 6; :mod:`attacks.attribute_inference`): a
linear probe trained on labelled public embeddings predicts the attribute of the targets.
Against a protection it is played twice:

- **static**: the probe is trained on *raw* public embeddings and applied to the
  protected targets. The attacker ignores the protection; a protection that merely moves
  the vectors (a secret rotation, a shift) fools it without hiding anything.
- **adaptive**: the attacker knows the protection (Kerckhoffs's principle) and can have
  its own public texts protected the same way (a member or partner submits them), so the
  probe is trained on the *protected* public embeddings and applied to the protected
  targets. A defence is judged by the strongest attack that knows it: the evaluation
  standard of Carlini and Wagner ("Adversarial Examples Are Not Easily Detected", AISec
  2017) and Tramèr, Carlini, Brendel and Madry ("On Adaptive Attacks to Adversarial
  Example Defenses", NeurIPS 2020); for embeddings, Song and Raghunathan train their
  attackers on the released model's own outputs in the same way.

The audit reports both rows; its evidence is the larger advantage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from attacks.attribute_inference import AttributeProbe, attribute_report
from attacks.base import AttackReport

__all__ = [
    "ADAPTIVE",
    "ATTACKERS",
    "STATIC",
    "THREAT_ADAPTIVE",
    "THREAT_STATIC",
    "adaptive_probe",
    "attribute_attacks",
]

logger = logging.getLogger(__name__)

STATIC, ADAPTIVE = "static", "adaptive"
ATTACKERS = (STATIC, ADAPTIVE)
THREAT_STATIC = (
    "static attacker: a linear probe trained on raw public labelled embeddings ({public}) "
    "predicts {attribute} of the protected targets"
)
THREAT_ADAPTIVE = (
    "adaptive attacker: knows the protection and has its public labelled texts ({public}) "
    "protected the same way (e.g. by submitting them); a linear probe trained on those "
    "protected embeddings predicts {attribute} of the protected targets (Tramer et al. 2020)"
)

View = Callable[[np.ndarray], np.ndarray]


def adaptive_probe(view: View, public_vectors: np.ndarray, labels: Sequence[str]) -> AttributeProbe:
    """A probe trained on ``view(public_vectors)``: the public data, protected as the targets."""
    return AttributeProbe().fit(np.asarray(view(public_vectors)), labels)


def attribute_attacks(
    static: AttributeProbe,
    view: View,
    public_vectors: np.ndarray,
    public_labels: Sequence[str],
    targets: np.ndarray,
    target_labels: Sequence[str],
    *,
    target: str,
    public: str,
    attribute: str,
    threat: str,
    details: dict[str, Any] | None = None,
) -> tuple[AttackReport, AttackReport]:
    """Attack ``view(targets)`` with the static probe and with an adaptive one.

    Args:
        static: The probe fitted on the raw ``public_vectors`` (fitted once, reused for
            every protection).
        view: What the attacker sees of a vector under the protection.
        public_vectors: The attacker's labelled public embeddings (raw).
        public_labels: Their attribute values.
        targets: The targets' raw embeddings (the view is applied here).
        target_labels: Their true attribute values.
        target: The report's target label (the same on both rows).
        public: The public labelled data, in words (threat models).
        attribute: The attribute, in words (threat models).
        threat: The protection's threat model, appended to each attacker's.
        details: Extra details for both reports (each also gets ``attacker``).

    Returns:
        The static and the adaptive report (metrics as :func:`attribute_report`).
    """
    seen = np.asarray(view(targets))
    extra = dict(details or {})
    words = {"public": public, "attribute": attribute}
    static_report = attribute_report(
        static,
        seen,
        target_labels,
        target=target,
        threat_model=f"{THREAT_STATIC.format(**words)}; {threat}",
        details={**extra, "attacker": STATIC},
    )
    adaptive = adaptive_probe(view, public_vectors, public_labels)
    adaptive_report = attribute_report(
        adaptive,
        seen,
        target_labels,
        target=target,
        threat_model=f"{THREAT_ADAPTIVE.format(**words)}; {threat}",
        details={**extra, "attacker": ADAPTIVE},
    )
    logger.info(
        "attribute: %s static advantage %.3f, adaptive %.3f",
        target,
        static_report.metrics["advantage"],
        adaptive_report.metrics["advantage"],
    )
    return static_report, adaptive_report
