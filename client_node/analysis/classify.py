"""Classify a node's records: a linear head on the shared model's vectors, cross-validated.

:func:`train_classifier` encodes the labelled records (through the embedding cache,
adapter on or off), scores a multinomial logistic regression by stratified k-fold
cross-validation (accuracy, macro-F1), fits it on every record and saves it with a
manifest recording what made the vectors. :func:`predict` loads a saved classifier,
refuses vectors from another encoder space, and labels new texts. Nothing leaves the
node; the manifest holds no texts and no vectors.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from analytics.cross_validation import C_GRID, CrossValidation, check_folds, choose_c
from analytics.cross_validation import cross_validate as cross_validate_head
from analytics.labelled_texts import LabelledTexts
from analytics.linear_classifier import DEFAULT_C, LinearClassifier
from client_node.analysis.record_vectors import RecordEncoder
from embedding_core.errors import FedembedError
from embedding_core.progress import Progress

__all__ = [
    "ClassifyReport",
    "Predictions",
    "check_same_space",
    "classifier_encoder",
    "encoder_identity",
    "load_classifier",
    "predict",
    "train_classifier",
]

logger = logging.getLogger(__name__)

_SPACE_KEYS = ("encoder_space", "adapter_sha256")


@dataclass(frozen=True)
class ClassifyReport:
    """What :func:`train_classifier` measured and wrote.

    Attributes:
        records: Records trained on.
        class_counts: Records per class.
        cross_validation: Scores of every fold and their means.
        c: The L2 setting of the saved classifier.
        model_dir: Where the classifier was saved (``None``: not saved).
        encoder: What made the vectors (:func:`encoder_identity`).
        seconds: Wall time of each step (``encode``, ``cross_validate``, ``fit``).
    """

    records: int
    class_counts: dict[str, int]
    cross_validation: CrossValidation
    c: float
    model_dir: Path | None
    encoder: dict[str, Any]
    seconds: dict[str, float]

    @property
    def accuracy(self) -> float:
        """Cross-validated accuracy (mean over folds)."""
        return self.cross_validation.accuracy

    @property
    def macro_f1(self) -> float:
        """Cross-validated macro-F1 (mean over folds)."""
        return self.cross_validation.macro_f1

    def as_dict(self) -> dict[str, Any]:
        """The JSON result of ``fedembed node analyse classify``."""
        cv = self.cross_validation.as_dict()
        return {
            "accuracy": cv["accuracy"],
            "accuracy_std": cv["accuracy_std"],
            "macro_f1": cv["macro_f1"],
            "macro_f1_std": cv["macro_f1_std"],
            "folds": cv["folds"],
            "per_fold": cv["per_fold"],
            "seed": cv["seed"],
            "classes": len(self.class_counts),
            "records": self.records,
            "c": self.c,
            "c_grid": cv["c_grid"],
            "model_dir": str(self.model_dir) if self.model_dir is not None else None,
            "encoder_backend": self.encoder.get("encoder_backend"),
            "adapter": self.encoder.get("adapter"),
            "seconds": self.seconds,
        }


@dataclass(frozen=True)
class Predictions:
    """Labels of new texts, with the probability of every class.

    Attributes:
        classes: Column order of ``probabilities``.
        labels: The most probable class of each text.
        probabilities: ``(texts, classes)``, rows summing to one.
    """

    classes: list[str]
    labels: list[str]
    probabilities: NDArray[np.float64]

    @property
    def confidence(self) -> NDArray[np.float64]:
        """The probability of each predicted label."""
        return np.asarray(self.probabilities.max(axis=1), dtype=np.float64)

    def top(self, index: int, count: int = 3) -> list[tuple[str, float]]:
        """The ``count`` most probable classes of text ``index``, best first."""
        row = self.probabilities[index]
        order = np.argsort(-row, kind="stable")[:count]
        return [(self.classes[i], float(row[i])) for i in order]


def encoder_identity(encoder: RecordEncoder) -> dict[str, Any]:
    """What makes ``encoder``'s vector space: its description plus the adapter's hash."""
    identity: dict[str, Any] = dict(encoder.description())
    identity["model_path"] = str(encoder.model) if encoder.model is not None else None
    identity["adapter_sha256"] = None
    if encoder.adapter is not None:
        from embedding_core.adapter import Adapter

        identity["adapter_sha256"] = Adapter.read_manifest(encoder.adapter).get("weights_sha256")
    return identity


def train_classifier(
    records: LabelledTexts,
    encoder: RecordEncoder,
    *,
    out: Path | None,
    folds: int = 5,
    seed: int = 0,
    c: float = DEFAULT_C,
    tune_c: bool = False,
) -> ClassifyReport:
    """Cross-validate, fit and (``out`` given) save a classifier of ``records``' labels.

    Args:
        records: Labelled records (``load_labelled_texts(..., label_column=...)``).
        encoder: How the records become vectors.
        out: Folder for the classifier (``manifest.json`` + weights); ``None``: not saved.
        folds: Stratified folds of the cross-validation (every class needs that many).
        seed: Seed of the fold assignment.
        c: The L2 setting (scikit-learn's ``C``) when ``tune_c`` is off.
        tune_c: Pick ``C`` from :data:`~analytics.cross_validation.C_GRID` by inner
            cross-validation (nested in every fold, then on all records for the saved
            classifier; several times slower).

    Raises:
        DataFormatError: The records carry no labels.
        FedembedError: One class only, or a class with fewer records than ``folds``.
    """
    labels = records.require_labels()
    check_folds(labels, folds)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    identity = encoder_identity(encoder)
    vectors = encoder.encode(records.texts, what="encode records to classify")
    timings["encode"] = time.perf_counter() - started

    started = time.perf_counter()
    cv = cross_validate_head(vectors, labels, folds=folds, seed=seed, c=None if tune_c else c)
    timings["cross_validate"] = time.perf_counter() - started

    started = time.perf_counter()
    chosen = c
    grid_scores: dict[float, float] = {}
    with Progress(1, what="fit classifier on all records", unit="fits") as progress:
        if tune_c:
            chosen, grid_scores = choose_c(vectors, labels, grid=C_GRID, seed=seed)
        model = LinearClassifier(c=chosen).fit(vectors, labels)
        progress.advance()
    timings["fit"] = time.perf_counter() - started

    class_counts = dict(sorted(records.class_counts().items()))
    if out is not None:
        model.save(
            out,
            extras={
                "encoder": identity,
                "records": {
                    "file": records.path.name,
                    "count": len(records),
                    "class_counts": class_counts,
                },
                "settings": {
                    "folds": folds,
                    "seed": seed,
                    "tune_c": tune_c,
                    "c_grid": list(C_GRID) if tune_c else None,
                    "inner_macro_f1": {f"{k:g}": v for k, v in grid_scores.items()} or None,
                },
                "metrics": cv.as_dict(),
            },
        )
    logger.info(
        "classify: %d records, %d classes, accuracy %.4f, macro-F1 %.4f",
        len(records),
        len(class_counts),
        cv.accuracy,
        cv.macro_f1,
    )
    return ClassifyReport(
        records=len(records),
        class_counts=class_counts,
        cross_validation=cv,
        c=chosen,
        model_dir=out,
        encoder=identity,
        seconds={k: round(v, 3) for k, v in timings.items()},
    )


def load_classifier(model_dir: Path) -> LinearClassifier:
    """The classifier saved in ``model_dir`` (hash verified; manifest in ``.manifest``)."""
    model = LinearClassifier.load(model_dir)
    if not isinstance(model.manifest.get("encoder"), dict):
        raise FedembedError(
            f"the classifier at {model_dir} does not say what encoder made its vectors",
            expected='an "encoder" entry in its manifest.json',
            fix="train it with `fedembed node analyse classify`",
        )
    return model


def classifier_encoder(
    model_dir: Path,
    *,
    model: Path | None = None,
    encoder_backend: str | None = None,
    adapter: Path | None = None,
    cache_dir: Path | None = None,
) -> RecordEncoder:
    """The encoder a saved classifier was trained with, unless told otherwise."""
    made = load_classifier(model_dir).manifest["encoder"]
    recorded_adapter = made.get("adapter")
    recorded_model = made.get("model_path")
    return RecordEncoder(
        model=model if model is not None else recorded_model,
        encoder_backend=encoder_backend or str(made.get("encoder_backend")),
        adapter=adapter
        if adapter is not None
        else (Path(recorded_adapter) if recorded_adapter else None),
        cache_dir=cache_dir,
    )


def _describe(identity: dict[str, Any]) -> str:
    adapter = identity.get("adapter")
    return (
        f"model {identity.get('model_id')}, --encoder-backend {identity.get('encoder_backend')}, "
        f"adapter {Path(adapter).name if adapter else 'none'}"
    )


def check_same_space(model_dir: Path, made: dict[str, Any], encoder: RecordEncoder) -> None:
    """Refuse an encoder whose vectors live in another space than the classifier's."""
    if encoder.adapter is not None and not Path(encoder.adapter).exists():
        raise FedembedError(
            f"the adapter {encoder.adapter} the classifier at {model_dir} was trained with "
            "is not on this node",
            expected="the adapter folder named in its manifest.json",
            fix="pass --adapter with that adapter's folder",
        )
    now = encoder_identity(encoder)
    if any(now.get(key) != made.get(key) for key in _SPACE_KEYS):
        raise FedembedError(
            f"the classifier at {model_dir} was trained in another encoder space "
            f"({_describe(made)}) than these records are encoded in ({_describe(now)})",
            expected="the model, encoder backend and adapter the classifier was trained with",
            fix="pass --model, --encoder-backend and --adapter as recorded in its "
            "manifest.json, or train it again in this space with "
            "`fedembed node analyse classify`",
        )


def predict(model_dir: Path, texts: list[str], encoder: RecordEncoder) -> Predictions:
    """Label ``texts`` with the classifier saved in ``model_dir``.

    Raises:
        FedembedError: The folder holds no valid classifier, its weights fail their
            SHA-256, or ``encoder`` encodes in another space than it was trained in.
    """
    classifier = load_classifier(model_dir)
    check_same_space(model_dir, classifier.manifest["encoder"], encoder)
    if not texts:
        return Predictions(classifier.classes, [], np.zeros((0, len(classifier.classes))))
    vectors = encoder.encode(texts, what="encode records to predict")
    probabilities = classifier.predict_proba(vectors)
    labels = [classifier.classes[i] for i in np.argmax(probabilities, axis=1)]
    return Predictions(list(classifier.classes), labels, probabilities)
