"""Attribute inference: a linear probe predicts a sensitive attribute from an embedding.

Song and Raghunathan, "Information Leakage in Embedding Models" (ACM CCS 2020), Section 6
(sensitive attribute inference): the attacker trains a classifier on public (embedding,
attribute) pairs and applies it to target embeddings. Here the probe is a multinomial
logistic regression (scikit-learn, L-BFGS) on L2-normalised embeddings; success is
reported as accuracy beside the majority-class baseline (always guessing the training
labels' most frequent value), so a probe that learned nothing scores the baseline.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped,unused-ignore]

from attacks.base import AttackReport
from attacks.bow_inversion import unit_rows

__all__ = ["ATTACK_NAME", "AttributeProbe", "attribute_report"]

logger = logging.getLogger(__name__)

ATTACK_NAME = "attribute_inference"
DEFAULT_C = 10.0
DEFAULT_MAX_ITER = 300


class AttributeProbe:
    """Multinomial logistic-regression probe from embedding to attribute value.

    Args:
        inverse_regularisation: scikit-learn's ``C``.
        max_iter: L-BFGS iterations.
    """

    def __init__(
        self, inverse_regularisation: float = DEFAULT_C, max_iter: int = DEFAULT_MAX_ITER
    ) -> None:
        self._model = LogisticRegression(C=inverse_regularisation, max_iter=max_iter)
        self.majority = ""
        self.fit_seconds = 0.0

    def fit(self, vectors: np.ndarray, labels: Sequence[str]) -> AttributeProbe:
        """Train on public ``(n, d)`` embeddings and their attribute values."""
        if len(vectors) != len(labels) or len(set(labels)) < 2:
            raise ValueError("need aligned vectors and labels with at least two classes")
        started = time.perf_counter()
        self._model.fit(unit_rows(vectors), list(labels))
        self.majority = Counter(labels).most_common(1)[0][0]
        self.fit_seconds = time.perf_counter() - started
        logger.info(
            "attribute: probe fitted on %d vectors, %d classes in %.1f s",
            len(labels),
            len(set(labels)),
            self.fit_seconds,
        )
        return self

    def predict(self, vectors: np.ndarray) -> list[str]:
        """The predicted attribute value of each vector."""
        return [str(label) for label in self._model.predict(unit_rows(vectors))]


def attribute_report(
    probe: AttributeProbe,
    vectors: np.ndarray,
    labels: Sequence[str],
    *,
    target: str,
    threat_model: str,
    details: dict[str, object] | None = None,
) -> AttackReport:
    """Attack ``vectors`` with a fitted probe; accuracy vs the majority baseline.

    Args:
        probe: A fitted probe.
        vectors: Target embeddings ``(n, d)`` (raw or protected).
        labels: Their true attribute values.
        target: The report's target label.
        threat_model: The attacker, in words.
        details: Extra details for the report.

    Returns:
        Metrics ``accuracy``, ``majority_baseline``, ``advantage`` (their difference) and
        ``targets``; ``seconds`` counts fitting plus prediction.
    """
    started = time.perf_counter()
    predicted = probe.predict(vectors)
    truth = list(labels)
    accuracy = float(np.mean([p == t for p, t in zip(predicted, truth, strict=True)]))
    baseline = float(np.mean([t == probe.majority for t in truth]))
    seconds = probe.fit_seconds + time.perf_counter() - started
    return AttackReport(
        attack=ATTACK_NAME,
        target=target,
        threat_model=threat_model,
        metrics={
            "accuracy": accuracy,
            "majority_baseline": baseline,
            "advantage": accuracy - baseline,
            "targets": float(len(truth)),
        },
        seconds=seconds,
        details=dict(details or {}),
    )
