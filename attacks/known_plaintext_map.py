"""Known-plaintext attack: a linear map from protected vectors back to their plaintexts.

An attacker who holds some (plaintext, protected) pairs, e.g. documents it planted in an
index or learned from a leak, fits a ridge-regularised least-squares linear map (with a
bias) from the protected space back to the plaintext space, then feeds mapped vectors to
any inverter. Any keyed *linear* protection (a rotation) falls to about ``d`` pairs;
DCPE's Scale-And-Perturb noise bounds how close the map gets.
"""

from __future__ import annotations

import logging

import numpy as np
from numpy.typing import NDArray

__all__ = ["DEFAULT_RIDGE", "LinearMapAttacker"]

logger = logging.getLogger(__name__)

DEFAULT_RIDGE = 1e-3


class LinearMapAttacker:
    """Known-plaintext attacker: least-squares map from protected vectors to plaintexts.

    Args:
        ridge: Ridge penalty relative to the mean squared input norm (keeps the fit
            well-posed when there are fewer pairs than dimensions).
    """

    def __init__(self, ridge: float = DEFAULT_RIDGE) -> None:
        self.ridge = ridge
        self._weights: NDArray[np.float64] | None = None

    def fit(self, protected: np.ndarray, plain: np.ndarray) -> LinearMapAttacker:
        """Fit ``plain ~ [protected, 1] @ W`` on the known pairs.

        Args:
            protected: ``(n, d)`` protected vectors (e.g. DCPE ciphertexts).
            plain: ``(n, d)`` their plaintexts.

        Returns:
            ``self``.
        """
        x = np.asarray(protected, dtype=np.float64)
        y = np.asarray(plain, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] == 0:
            raise ValueError(f"need aligned (n, d) pairs, got {x.shape} and {y.shape}")
        scale = float(np.sqrt(np.mean(np.sum(x * x, axis=1)))) or 1.0
        design = np.hstack([x / scale, np.ones((x.shape[0], 1))])
        gram = design.T @ design + self.ridge * np.eye(design.shape[1])
        weights = np.asarray(np.linalg.solve(gram, design.T @ y), dtype=np.float64)
        weights[:-1] /= scale
        self._weights = weights
        logger.info("linear-map: fitted on %d known pairs (d=%d)", x.shape[0], x.shape[1])
        return self

    def recover(self, protected: np.ndarray) -> NDArray[np.float32]:
        """The attacker's estimates of the plaintexts of ``protected``."""
        if self._weights is None:
            raise RuntimeError("LinearMapAttacker.fit must run before recover")
        x = np.asarray(protected, dtype=np.float64)
        estimate = x @ self._weights[:-1] + self._weights[-1]
        result: NDArray[np.float32] = estimate.astype(np.float32)
        return result
