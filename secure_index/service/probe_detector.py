"""Flag partners whose recent queries look like probing rather than natural search.

A partner who reads back scores can rebuild stored vectors by solving linear equations
(F. Tramèr, F. Zhang, A. Juels, M. K. Reiter, T. Ristenpart, "Stealing Machine Learning
Models via Prediction APIs", USENIX Security 2016): the cheapest query sets are the
basis vectors (one coordinate per query) and random directions (any ``dim`` of them are
independent). Neither looks like what the model produces from text. Following stateful
extraction detectors that keep a per-client window of recent queries and test its
distribution against natural traffic (M. Juuti, S. Szyller, S. Marchal, N. Asokan,
"PRADA: Protecting Against DNN Model Stealing Attacks", IEEE EuroS&P 2019; S. Chen,
N. Carlini, D. Wagner, "Stateful Detection of Black-Box Adversarial Attacks", ACM
SPAI 2020), the detector keeps, per key and in memory only, the last
:data:`WINDOW` query vectors the gateway computed (the embedding of a text, or the
partner's vector, normalised) and raises an alert on either signal:

(a) **basis-like queries**: a query's participation ratio ``(sum x_i^2)^2 / sum x_i^4``
    (the effective number of non-zero coordinates; R. J. Bell, P. Dean, Discussions of
    the Faraday Society 50, 1970) below ``max(2, dim / 20)``. A basis vector has 1, a
    k-sparse probe at most k; MiniLM embeddings of text have 75 to 162 (median 127 of
    384; SciFact, STS-B, BANKING77) and random directions about ``dim / 3``.
    :data:`SPARSE_TRIGGER` such queries in the window raise the alert.
(b) **near-orthogonal query sets**: the mean absolute pairwise cosine of a full window
    below :data:`ORTHOGONAL_MEAN_ABS_COSINE`. Random unit vectors in ``d`` dimensions
    have ``E|cos| = sqrt(2 / (pi d))`` (0.041 at 384; basis vectors 0), while text
    embeddings share directions. Calibration, all-MiniLM-L6-v2 (384 dimensions), 300
    random windows of 32: SciFact claims 0.105 (1st percentile; median 0.127), SciFact
    abstracts 0.126, STS-B captions and news 0.065, BANKING77 0.166, a mix of the three
    domains 0.063; random directions at most 0.045. The threshold 0.052 sits between.
    Below about 260 dimensions random directions are not that orthogonal (0.2 at 16), so
    there this signal fires only for sets more orthogonal than random, such as a basis.

Signals the measurements ruled out: the cosine to the mean of public embeddings (the
mean of STS-B sentences: SciFact claims median -0.02, random directions 0.00: MiniLM's
normalised embeddings have no dominant common direction) and the norm (the gateway
normalises every query before searching, so the norm tells the index nothing).

On an alert the key's window is cleared (one alert per window of fresh evidence; a
resumed key starts clean). What this cannot catch: an adaptive prober who mixes natural
texts into the window, adds a natural offset to random probes, or probes with chosen
texts. What bounds those is the rest of the query policy: no vector queries without a
grant, rank-only scores by default, and the query budget (docs/index.md, "What a
probing partner learns", measures what each still leaks).
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MAX_TRACKED_KEYS",
    "ORTHOGONAL_MEAN_ABS_COSINE",
    "SPARSE_TRIGGER",
    "WINDOW",
    "ProbeAlert",
    "ProbeDetector",
    "ProbeSignal",
    "mean_abs_pairwise_cosine",
    "participation_ratio",
]

logger = logging.getLogger(__name__)

WINDOW = 32  # recent queries kept per key (and dimension)
ORTHOGONAL_MEAN_ABS_COSINE = 0.052  # a full window below this is near-orthogonal
SPARSE_PR_FRACTION = 1 / 20  # a query with participation ratio < dim / 20 is sparse...
SPARSE_PR_FLOOR = 2.0  # ...or < 2, whichever is larger
SPARSE_TRIGGER = 4  # sparse queries in the window that raise the alert
MAX_TRACKED_KEYS = 1024  # least recently seen keys beyond this are forgotten


class ProbeSignal:
    """Why a window was flagged (the audit record's ``signal``)."""

    BASIS_LIKE = "basis-like"
    NEAR_ORTHOGONAL = "near-orthogonal"


@dataclass(frozen=True)
class ProbeAlert:
    """A probing alert: the signal, its statistic and how many queries it looked at."""

    signal: str
    statistic: float
    window: int


def participation_ratio(vector: ArrayLike) -> float:
    """``(sum x_i^2)^2 / sum x_i^4``: 1 for a basis vector, ``dim`` for a flat one."""
    x = np.asarray(vector, dtype=np.float64).reshape(-1)
    squares = x * x
    fourth = float(np.sum(squares * squares))
    return float(np.sum(squares)) ** 2 / fourth if fourth > 0 else 0.0


def mean_abs_pairwise_cosine(vectors: ArrayLike) -> float:
    """Mean ``|cos|`` over the distinct pairs of rows (rows need not be normalised)."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    if n < 2:
        return 1.0
    cos = np.abs(x @ x.T)
    return float((cos.sum() - np.trace(cos)) / (n * (n - 1)))


def _is_sparse(vector: NDArray[np.float32]) -> bool:
    return participation_ratio(vector) < max(SPARSE_PR_FLOOR, SPARSE_PR_FRACTION * len(vector))


@dataclass
class _Window:
    vectors: deque[NDArray[np.float32]]
    sparse: deque[bool]


class ProbeDetector:
    """Per-key windows of recent query vectors, in memory only, and the two tests.

    Vectors are kept only in this process's memory (never logged, never written); at
    most :data:`WINDOW` per key and :data:`MAX_TRACKED_KEYS` keys.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._windows: OrderedDict[tuple[str, int], _Window] = OrderedDict()

    def observe(self, key_id: str, vector: ArrayLike) -> ProbeAlert | None:
        """Add a query vector of ``key_id``; an alert when its window now looks like probing.

        Args:
            key_id: The partner key that sent the query.
            vector: The query vector the gateway computed (before any encryption).
        """
        x = np.asarray(vector, dtype=np.float32).reshape(-1)
        norm = float(np.linalg.norm(x))
        if not np.isfinite(norm) or norm == 0.0:
            return None  # the search refuses it anyway
        x = x / norm
        slot = (key_id, len(x))
        with self._lock:
            window = self._windows.pop(slot, None) or _Window(
                deque(maxlen=WINDOW), deque(maxlen=WINDOW)
            )
            window.vectors.append(x)
            window.sparse.append(_is_sparse(x))
            alert = self._test(window)
            if alert is None:
                self._windows[slot] = window  # most recently seen last
                while len(self._windows) > MAX_TRACKED_KEYS:
                    self._windows.popitem(last=False)
        if alert is not None:
            logger.warning(
                "probe detector: key %s flagged (%s, statistic %.3f over %d queries)",
                key_id,
                alert.signal,
                alert.statistic,
                alert.window,
            )
        return alert

    @staticmethod
    def _test(window: _Window) -> ProbeAlert | None:
        n = len(window.vectors)
        sparse = sum(window.sparse)
        if sparse >= SPARSE_TRIGGER:
            return ProbeAlert(ProbeSignal.BASIS_LIKE, float(sparse), n)
        if n == WINDOW:
            mean_cos = mean_abs_pairwise_cosine(np.stack(window.vectors))
            if mean_cos < ORTHOGONAL_MEAN_ABS_COSINE:
                return ProbeAlert(ProbeSignal.NEAR_ORTHOGONAL, mean_cos, n)
        return None

    def forget(self, key_id: str) -> None:
        """Drop every window of ``key_id`` (a revoked or resumed key)."""
        with self._lock:
            for slot in [s for s in self._windows if s[0] == key_id]:
                del self._windows[slot]
