"""A trained classifier head: the public labels, weights and bias, and its predictions.

What a federated classifier run publishes (``classifier_head.json``, written by
:mod:`coordinator.classifier_strategy`; trained by :mod:`dp_training.dp_classifier_head`),
read back and applied to the shared encoder's vectors on any node. The head is DP and
public: predicting with it costs no privacy.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedding_core.errors import FedembedError

__all__ = ["ClassifierHead"]

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class ClassifierHead:
    """A trained head: predicts the public labels from the encoder's vectors.

    Attributes:
        labels: The public label set (row ``j`` of ``weights`` scores ``labels[j]``).
        weights, bias: ``(k, d)``, ``(k,)``.
        manifest: The published document it was read from (empty when built here).
    """

    labels: tuple[str, ...]
    weights: FloatArray
    bias: FloatArray
    manifest: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> ClassifierHead:
        """Read a published ``classifier_head.json``.

        Raises:
            FedembedError: The file is missing or is not a classifier head.
        """
        file = Path(path).expanduser()
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
            labels = tuple(str(x) for x in document["labels"])
            weights = np.asarray(document["weights"], dtype=np.float64)
            bias = np.asarray(document["bias"], dtype=np.float64)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise FedembedError(
                f"cannot read the classifier head {file} ({exc})",
                expected="the classifier_head.json a classifier run published",
                fix="name the file from the run folder of a task='classifier' run",
            ) from None
        if weights.ndim != 2 or weights.shape[0] != len(labels) or bias.shape != (len(labels),):
            raise FedembedError(
                f"the classifier head {file} has weights {weights.shape} and bias "
                f"{bias.shape} for {len(labels)} labels",
                expected="weights (labels, dim) and bias (labels,)",
                fix="republish it from the run",
            )
        return cls(labels, weights, bias, dict(document))

    def scores(self, vectors: NDArray[np.floating]) -> FloatArray:
        """Class scores ``(n, k)`` before the softmax."""
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.weights.shape[1]:
            raise FedembedError(
                f"the classifier head reads vectors of width {self.weights.shape[1]}, "
                f"got shape {x.shape}",
                expected="vectors from the encoder backend the head was trained on",
                fix="encode with the head's encoder_backend",
            )
        return np.asarray(x @ self.weights.T + self.bias, dtype=np.float64)

    def predict(self, vectors: NDArray[np.floating]) -> list[str]:
        """The most probable label of each vector."""
        return [self.labels[i] for i in np.argmax(self.scores(vectors), axis=1)]
