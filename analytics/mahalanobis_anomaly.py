"""Anomaly score of a record: its Mahalanobis distance to the normal set's classes.

Lee, Lee, Lee and Shin ("A simple unified framework for detecting out-of-distribution
samples and adversarial attacks", NeurIPS 2018) model the normal embeddings as Gaussians,
one mean per class and one covariance shared by all classes, and score a record by its
smallest squared Mahalanobis distance to a class mean. Without labels the normal set is
one class. The covariance of 384-dimensional embeddings from a few thousand records is
poorly conditioned, so it is shrunk towards a multiple of the identity with the
Ledoit-Wolf estimate of the best shrinkage ("A well-conditioned estimator for
large-dimensional covariance matrices", J. Multivariate Analysis 2004); computed here in
numpy, equal to scikit-learn's ``LedoitWolf(assume_centered=True)`` on the class-centred
vectors.

``relative=True`` subtracts the record's distance under one Gaussian fitted to the whole
normal set (the relative Mahalanobis distance of Ren et al., "A simple fix to
Mahalanobis distance for improving near-OOD detection", 2021): what is common to all
normal records stops counting, which helps when the unknown classes are near the known
ones (BANKING77's held-out intents: AUROC 0.82 -> 0.90, ``benchmarks/bench_anomalies.py``).
Both Gaussians are shrunk with the class covariance's Ledoit-Wolf intensity, so the two
distances are on one scale (:meth:`MahalanobisAnomalyDetector.fit`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from embedding_core.errors import FedembedError

__all__ = ["MahalanobisAnomalyDetector", "ledoit_wolf"]

logger = logging.getLogger(__name__)

DEFAULT_BLOCK = 4096


def ledoit_wolf(
    centred: NDArray[np.floating], *, shrinkage: float | None = None
) -> tuple[NDArray[np.float64], float]:
    """The Ledoit-Wolf shrunk covariance of already-centred rows, and its shrinkage.

    ``(1 - s) * S + s * mu * I`` with ``S = X^T X / n``, ``mu = trace(S) / p`` and ``s``
    the estimated optimal shrinkage in ``[0, 1]`` (Ledoit and Wolf 2004, Lemma 3.2-3.4),
    or ``shrinkage`` when given.
    """
    x = np.asarray(centred, dtype=np.float64)
    n, p = x.shape
    if n < 2:
        raise FedembedError(
            f"{n} record(s) cannot give a covariance", expected="at least 2 normal records"
        )
    emp = x.T @ x / n
    mu = float(np.trace(emp)) / p
    x2 = x**2
    beta_sum = float(np.sum(x2.T @ x2))
    delta_sum = float(np.sum(emp**2)) * n * n
    beta = (beta_sum / n - delta_sum / (n * n)) / (p * n)
    delta = (delta_sum / (n * n) - 2.0 * mu * float(np.trace(emp)) + p * mu * mu) / p
    beta = min(beta, delta)
    if shrinkage is None:
        shrinkage = 0.0 if beta == 0 else beta / delta
    elif not 0.0 <= shrinkage <= 1.0:
        raise FedembedError(f"shrinkage {shrinkage} is outside [0, 1]")
    shrunk = (1.0 - shrinkage) * emp
    shrunk.flat[:: p + 1] += shrinkage * mu
    return shrunk, shrinkage


def _nearest_squared(
    x: NDArray[np.float64],
    means: NDArray[np.float64],
    precision: NDArray[np.float64],
    block: int,
) -> NDArray[np.float64]:
    """Each row's smallest squared Mahalanobis distance to one of ``means``."""
    projected_means = means @ precision
    mean_terms = np.einsum("cd,cd->c", projected_means, means)
    out = np.empty(x.shape[0], dtype=np.float64)
    for start in range(0, x.shape[0], block):
        chunk = x[start : start + block]
        own = np.einsum("nd,nd->n", chunk @ precision, chunk)
        squared = own[:, None] - 2.0 * chunk @ projected_means.T + mean_terms[None, :]
        out[start : start + block] = np.maximum(squared.min(axis=1), 0.0)
    return out


@dataclass
class MahalanobisAnomalyDetector:
    """Smallest squared Mahalanobis distance to a class mean (higher: more anomalous).

    Attributes:
        relative: Subtract the distance under one Gaussian of the whole normal set
            (needs labels: with one class the two distances are equal).
        block: Records per matrix product when scoring.
    """

    relative: bool = False
    block: int = DEFAULT_BLOCK
    name: str = field(default="mahalanobis", init=False)
    background_mean_: NDArray[np.float64] | None = field(default=None, init=False, repr=False)
    background_precision_: NDArray[np.float64] | None = field(default=None, init=False, repr=False)
    means_: NDArray[np.float64] | None = field(default=None, init=False, repr=False)
    precision_: NDArray[np.float64] | None = field(default=None, init=False, repr=False)
    shrinkage_: float = field(default=0.0, init=False)
    classes_: list[str] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if self.relative:
            self.name = "relative-mahalanobis"

    def fit(
        self, normal: NDArray[np.floating], labels: list[str] | None = None
    ) -> MahalanobisAnomalyDetector:
        """Class means and the shared shrunk covariance of the normal vectors."""
        x = np.asarray(normal, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] < 2:
            raise FedembedError(
                f"the normal set has shape {x.shape}",
                expected="at least 2 normal records, one vector a row",
            )
        if labels is not None and len(labels) != x.shape[0]:
            raise FedembedError(
                f"{len(labels)} labels for {x.shape[0]} normal records",
                expected="one label per normal record",
            )
        if self.relative and labels is None:
            raise FedembedError(
                "the relative Mahalanobis detector needs the normal records' labels",
                expected="labels (one class per normal record)",
                fix="pass the labels, or use the plain Mahalanobis detector",
            )
        if labels is None:
            classes = ["normal"]
            codes = np.zeros(x.shape[0], dtype=np.int64)
        else:
            found, inverse = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
            classes = [str(c) for c in found]
            codes = inverse.astype(np.int64).ravel()
        counts = np.bincount(codes, minlength=len(classes)).astype(np.float64)
        sums = np.zeros((len(classes), x.shape[1]))
        np.add.at(sums, codes, x)
        means = sums / counts[:, None]
        covariance, shrinkage = ledoit_wolf(x - means[codes])
        self.means_ = means
        self.precision_ = np.asarray(np.linalg.inv(covariance), dtype=np.float64)
        self.shrinkage_ = shrinkage
        self.classes_ = classes
        if self.relative:
            background = x.mean(axis=0, keepdims=True)
            # The same shrinkage as the class covariance: with a few hundred records in
            # 384 dimensions Ledoit-Wolf shrinks the class covariance (within-class
            # spread only) far more than the background one, and the difference of two
            # distances measured on different scales ranks unknown records as the most
            # normal (AUROC 0.004 on 4 BANKING77 intents of 50 records; 0.999 with one
            # shrinkage).
            background_cov, _ = ledoit_wolf(x - background, shrinkage=shrinkage)
            self.background_mean_ = background
            self.background_precision_ = np.asarray(np.linalg.inv(background_cov))
        logger.debug(
            "mahalanobis anomaly: %d normal records, %d classes, shrinkage %.3f",
            x.shape[0],
            len(classes),
            shrinkage,
        )
        return self

    def score(self, vectors: NDArray[np.floating]) -> NDArray[np.float64]:
        """Each record's smallest squared Mahalanobis distance to a class mean."""
        if self.means_ is None or self.precision_ is None:
            raise FedembedError(
                "the Mahalanobis detector is not fitted", fix="call fit(normal) first"
            )
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.means_.shape[1]:
            raise FedembedError(
                f"the records have shape {x.shape}",
                expected=f"one {self.means_.shape[1]}-dimensional vector a row",
            )
        out = _nearest_squared(x, self.means_, self.precision_, self.block)
        if self.background_mean_ is not None and self.background_precision_ is not None:
            out -= _nearest_squared(
                x, self.background_mean_, self.background_precision_, self.block
            )
        return out

    def state(self) -> dict[str, NDArray[np.generic]]:
        """Arrays to save (class means and precision)."""
        if self.means_ is None or self.precision_ is None:
            raise FedembedError("the Mahalanobis detector is not fitted")
        arrays: dict[str, NDArray[np.generic]] = {
            "means": self.means_,
            "precision": self.precision_,
        }
        if self.background_mean_ is not None and self.background_precision_ is not None:
            arrays |= {
                "background_mean": self.background_mean_,
                "background_precision": self.background_precision_,
            }
        return arrays

    def settings(self) -> dict[str, object]:
        """Settings to record in a manifest."""
        return {
            "classes": self.classes_,
            "shrinkage": self.shrinkage_,
            "relative": self.relative,
        }

    @classmethod
    def restore(
        cls, settings: dict[str, object], arrays: dict[str, NDArray[np.generic]]
    ) -> MahalanobisAnomalyDetector:
        """The detector :meth:`state` and :meth:`settings` describe."""
        detector = cls(relative=bool(settings.get("relative", False)))
        if detector.relative:
            detector.background_mean_ = np.asarray(arrays["background_mean"], dtype=np.float64)
            detector.background_precision_ = np.asarray(
                arrays["background_precision"], dtype=np.float64
            )
        detector.means_ = np.asarray(arrays["means"], dtype=np.float64)
        detector.precision_ = np.asarray(arrays["precision"], dtype=np.float64)
        detector.shrinkage_ = float(str(settings.get("shrinkage", 0.0)))
        classes = settings.get("classes", [])
        detector.classes_ = [str(c) for c in classes] if isinstance(classes, list) else []
        return detector
