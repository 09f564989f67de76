"""A linear head on embeddings: multinomial logistic regression with an L2 penalty.

The model is softmax regression (Bishop, *Pattern Recognition and Machine Learning*,
2006, section 4.3.4): for classes ``k`` it scores ``z_k = w_k . x + b_k`` and predicts
``p(k | x) = softmax(z)_k``. It is fitted full-batch by minimising the mean negative
log-likelihood plus an L2 penalty on the weights (not the intercepts)::

    (1 / n) sum_i -log p(y_i | x_i)  +  ||W||^2 / (2 C n)

with L-BFGS (Liu and Nocedal, "On the limited memory BFGS method for large scale
optimization", Mathematical Programming 45, 1989; SciPy's L-BFGS-B, Byrd, Lu, Nocedal
and Zhu, 1995). This is the objective and the solver of scikit-learn's
``LogisticRegression(C=C, solver="lbfgs")`` with the same ``tol`` and ``max_iter``, so
the same ``C`` gives the same model. With two classes scikit-learn fits one weight
vector (binary logistic regression); the two-row softmax with the penalty at ``C / 2``
has the same optimum (``w_1 - w_0`` is scikit-learn's ``coef_``), which is what is fitted
here, so ``C`` means the same thing for every number of classes.

The fitted head is small (``classes x (dim + 1)`` numbers), so the federated recipe can
average it like any other linear layer. :meth:`LinearClassifier.save` writes it as an
``.npz`` with a ``manifest.json`` (classes, settings, SHA-256 of the weights, plus what
the caller adds); :meth:`LinearClassifier.load` verifies the hash.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from embedding_core.atomic_file import atomic_write_bytes
from embedding_core.errors import FedembedError

__all__ = [
    "CLASSIFIER_FORMAT",
    "CLASSIFIER_MANIFEST",
    "CLASSIFIER_WEIGHTS",
    "DEFAULT_C",
    "LinearClassifier",
]

logger = logging.getLogger(__name__)

CLASSIFIER_FORMAT = "fedembed-linear-classifier"
CLASSIFIER_FORMAT_VERSION = 1
CLASSIFIER_MANIFEST = "manifest.json"
CLASSIFIER_WEIGHTS = "classifier.npz"

DEFAULT_C = 30.0
"""Inverse L2 strength for unit-norm sentence embeddings: the best of 1, 3, 10, 30, 100
by 5-fold macro-F1 on BANKING77 train (benchmarks/bench_classify.py, 2026-12-07: 0.9026,
0.9156, 0.9156, 0.9205, 0.9205; ties go to the stronger penalty)."""

_BLAS_THREADS = 1
"""BLAS threads during a fit. L-BFGS-B's own step is many tiny BLAS calls: with
OpenBLAS threads on a busy 2-core machine a BANKING77 fit took 56-59 s, single-threaded
11-17 s (same iterations), so fits run on one thread (threadpoolctl ships with
scikit-learn)."""

_FTOL = 64 * float(np.finfo(np.float64).eps)  # scikit-learn's lbfgs setting
_MAX_LINE_SEARCH = 50


@dataclass
class LinearClassifier:
    """Softmax regression with an L2 penalty, fitted by L-BFGS.

    Args:
        c: Inverse regularisation strength, as scikit-learn's ``C`` (larger: weaker).
        tol: Stop when the largest gradient component falls below this.
        max_iter: Most L-BFGS iterations.

    Attributes (after :meth:`fit` or :meth:`load`):
        classes: The class names, sorted (row ``k`` of ``coef`` scores ``classes[k]``).
        coef: ``(classes, dim)`` weights.
        intercept: ``(classes,)`` biases.
        n_iter: Iterations the last fit took.
        converged: Whether it met ``tol`` before ``max_iter``.
        manifest: The manifest it was loaded with (empty when fitted here).
    """

    c: float = DEFAULT_C
    tol: float = 1e-4
    max_iter: int = 1000
    classes: list[str] = field(default_factory=list)
    coef: NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))
    intercept: NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    n_iter: int = 0
    converged: bool = False
    manifest: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.c > 0:
            raise FedembedError(
                f"the L2 setting C must be positive, got {self.c}",
                expected="C > 0 (larger C: weaker regularisation)",
                fix=f"pass --c with a positive number, e.g. --c {DEFAULT_C:g}",
            )

    @property
    def dim(self) -> int:
        """Width of the vectors the classifier reads."""
        return int(self.coef.shape[1])

    def fit(
        self,
        vectors: NDArray[np.floating[Any]],
        labels: Sequence[str],
        *,
        warm_start: LinearClassifier | None = None,
    ) -> LinearClassifier:
        """Fit on ``vectors`` ``(n, dim)`` and their ``labels``; returns ``self``.

        Args:
            vectors: ``(n, dim)`` vectors; float32 ones are fitted in float32 arithmetic.
            labels: Each vector's class (any strings; sorted into :attr:`classes`).
            warm_start: A classifier with the same classes and width to start from (a
                regularisation path: each ``C`` starts from the previous one's optimum).

        Raises:
            FedembedError: Fewer than two classes, or vectors and labels of other lengths.
        """
        # float32 vectors are fitted in float32 arithmetic (about twice as fast; the
        # parameters and the loss stay float64), as scikit-learn does.
        work: type[np.floating[Any]] = (
            np.float32 if np.asarray(vectors).dtype == np.float32 else np.float64
        )
        x: NDArray[np.floating[Any]] = np.asarray(vectors, dtype=work)
        if x.ndim != 2 or x.shape[0] != len(labels):
            raise FedembedError(
                f"got {x.shape[0] if x.ndim else 0} vectors for {len(labels)} labels",
                expected="one label per vector",
            )
        classes, targets = np.unique(np.asarray(labels, dtype=str), return_inverse=True)
        if len(classes) < 2:
            raise FedembedError(
                f"the records hold one class only ({classes[0] if len(classes) else 'none'})",
                expected="records of at least two classes",
                fix="check --label-column names the column holding the class",
            )
        n, dim = x.shape
        k = len(classes)
        onehot = np.zeros((n, k), dtype=work)
        onehot[np.arange(n), targets] = 1.0
        x_t = np.ascontiguousarray(x.T)
        # Two classes: the symmetric two-row softmax at C/2 is binary logistic at C.
        c = self.c / 2.0 if k == 2 else self.c
        l2 = 1.0 / (c * n)
        split = k * dim

        def objective(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
            weights = theta[:split].reshape(k, dim).astype(work)
            scores = x @ weights.T + theta[split:].astype(work)
            top = scores.max(axis=1, keepdims=True)
            exp = np.exp(scores - top)
            total = exp.sum(axis=1, keepdims=True)
            log_norm = np.log(total) + top
            log_likelihood = np.sum(scores * onehot, dtype=np.float64)
            loss = float(np.sum(log_norm, dtype=np.float64) - log_likelihood) / n
            loss += 0.5 * l2 * float(np.dot(theta[:split], theta[:split]))
            residual = (exp / total - onehot) / n
            grad = np.empty_like(theta)
            grad[:split] = (x_t @ residual).T.ravel() + l2 * theta[:split]
            grad[split:] = residual.sum(axis=0, dtype=np.float64)
            return loss, grad

        start = np.zeros(k * (dim + 1))
        if (
            warm_start is not None
            and list(warm_start.classes) == [str(c) for c in classes]
            and warm_start.coef.shape == (k, dim)
        ):
            start[:split] = warm_start.coef.ravel()
            start[split:] = warm_start.intercept
        with threadpool_limits(limits=_BLAS_THREADS):
            result = minimize(
                objective,
                start,
                jac=True,
                method="L-BFGS-B",
                options={
                    "maxiter": self.max_iter,
                    "gtol": self.tol,
                    "ftol": _FTOL,
                    "maxls": _MAX_LINE_SEARCH,
                },
            )
        self.classes = [str(name) for name in classes]
        self.coef = np.asarray(result.x[:split].reshape(k, dim), dtype=np.float64)
        self.intercept = np.asarray(result.x[split:], dtype=np.float64)
        self.n_iter = int(result.nit)
        self.converged = bool(result.success)
        if not self.converged:
            logger.warning(
                "linear classifier: L-BFGS stopped after %d iterations without meeting tol=%g (%s)",
                self.n_iter,
                self.tol,
                result.message,
            )
        logger.debug("linear classifier: %d classes, %d iterations", k, self.n_iter)
        return self

    def decision_function(self, vectors: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """Class scores ``(n, classes)`` before the softmax."""
        if not self.classes:
            raise FedembedError(
                "the classifier is not fitted", fix="call fit() or load() a saved one"
            )
        x = np.asarray(vectors, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise FedembedError(
                f"the classifier reads vectors of width {self.dim}, got shape {x.shape}",
                expected="vectors from the encoder (and adapter) the classifier was trained on",
                fix="encode with the model, --encoder-backend and --adapter it was trained with",
            )
        return np.asarray(x @ self.coef.T + self.intercept, dtype=np.float64)

    def predict_proba(self, vectors: NDArray[np.floating[Any]]) -> NDArray[np.float64]:
        """Class probabilities ``(n, classes)``, columns in :attr:`classes` order."""
        scores = self.decision_function(vectors)
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return np.asarray(exp / exp.sum(axis=1, keepdims=True), dtype=np.float64)

    def predict(self, vectors: NDArray[np.floating[Any]]) -> list[str]:
        """The most probable class of each vector."""
        best = np.argmax(self.decision_function(vectors), axis=1)
        return [self.classes[i] for i in best]

    def save(self, folder: str | Path, *, extras: dict[str, Any] | None = None) -> Path:
        """Write the weights and ``manifest.json`` into ``folder``; returns the manifest path.

        Args:
            folder: Target folder (made if missing).
            extras: JSON-serialisable facts to record beside the classifier's own (what
                made the vectors, metrics, the records' file, ...).
        """
        if not self.classes:
            raise FedembedError("the classifier is not fitted", fix="call fit() first")
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, coef=self.coef, intercept=self.intercept)
        weights = buffer.getvalue()
        atomic_write_bytes(target / CLASSIFIER_WEIGHTS, weights)
        manifest: dict[str, Any] = {
            "format": CLASSIFIER_FORMAT,
            "format_version": CLASSIFIER_FORMAT_VERSION,
            "method": "multinomial logistic regression, L2, L-BFGS",
            "classes": self.classes,
            "dim": self.dim,
            "c": self.c,
            "tol": self.tol,
            "max_iter": self.max_iter,
            "n_iter": self.n_iter,
            "converged": self.converged,
            "weights_file": CLASSIFIER_WEIGHTS,
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            **(extras or {}),
        }
        path = target / CLASSIFIER_MANIFEST
        atomic_write_bytes(path, (json.dumps(manifest, indent=2) + "\n").encode())
        logger.info("linear classifier: saved %d classes to %s", len(self.classes), target)
        return path

    @staticmethod
    def read_manifest(folder: str | Path) -> dict[str, Any]:
        """The manifest of a saved classifier, checked, without reading the weights."""
        path = Path(folder) / CLASSIFIER_MANIFEST
        fix = "pass --classifier with the folder `fedembed node analyse classify --out` wrote"
        if not path.is_file():
            raise FedembedError(
                f"no classifier manifest at {path}",
                expected=f"a folder holding {CLASSIFIER_MANIFEST} and {CLASSIFIER_WEIGHTS}",
                fix=fix,
            )
        try:
            manifest = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise FedembedError(f"{path} is not valid JSON ({exc})", fix=fix) from exc
        if not isinstance(manifest, dict) or manifest.get("format") != CLASSIFIER_FORMAT:
            raise FedembedError(
                f"{path} is not a fedembed classifier manifest",
                expected=f'"format": "{CLASSIFIER_FORMAT}"',
                fix=fix,
            )
        if manifest.get("format_version") != CLASSIFIER_FORMAT_VERSION:
            raise FedembedError(
                f"{path} has format_version {manifest.get('format_version')}",
                expected=f"format_version {CLASSIFIER_FORMAT_VERSION}",
                fix="upgrade fedembed, or train the classifier again with this version",
            )
        return manifest

    @classmethod
    def load(cls, folder: str | Path) -> LinearClassifier:
        """Load a classifier :meth:`save` wrote, verifying the weights' SHA-256."""
        target = Path(folder)
        manifest = cls.read_manifest(target)
        weights_path = target / str(manifest.get("weights_file", CLASSIFIER_WEIGHTS))
        if not weights_path.is_file():
            raise FedembedError(
                f"the classifier weights {weights_path} are missing",
                fix="copy the whole folder `classify --out` wrote, or train again",
            )
        data = weights_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest.get("weights_sha256"):
            raise FedembedError(
                f"the classifier weights {weights_path} do not match the SHA-256 in "
                f"{CLASSIFIER_MANIFEST}",
                expected="the weights file written together with the manifest",
                fix="the file is corrupt or was replaced: restore the folder or train again",
            )
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
                coef = np.asarray(arrays["coef"], dtype=np.float64)
                intercept = np.asarray(arrays["intercept"], dtype=np.float64)
            classes = [str(name) for name in manifest["classes"]]
            model = cls(
                c=float(manifest["c"]),
                tol=float(manifest["tol"]),
                max_iter=int(manifest["max_iter"]),
            )
        except (KeyError, TypeError, ValueError, OSError) as exc:
            raise FedembedError(
                f"the classifier at {target} does not match its manifest ({exc})",
                fix="train the classifier again",
            ) from exc
        if coef.shape != (len(classes), int(manifest.get("dim", -1))) or intercept.shape != (
            len(classes),
        ):
            raise FedembedError(
                f"the classifier at {target} does not match its manifest "
                f"(weights {coef.shape} for {len(classes)} classes)",
                fix="train the classifier again",
            )
        model.classes = classes
        model.coef = coef
        model.intercept = intercept
        model.n_iter = int(manifest.get("n_iter", 0))
        model.converged = bool(manifest.get("converged", False))
        model.manifest = manifest
        return model
