"""Label a member's records with the consortium's published classifier head.

A ``task='classifier'`` run (:mod:`dp_training.dp_classifier_head`) publishes
``classifier_head.json``: a linear softmax head over the consortium's public label set,
trained by DP-SGD on every member's records inside the CKKS secure sum. The head reads
vectors of the bundled encoder in the backend the run used, without an adapter (the
nodes encode their records that way in the run). ``fedembed node analyse predict
--classifier classifier_head.json`` comes here: the node's records are encoded locally
and never leave it; the head is public.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from client_node.analysis.classify import Predictions
from client_node.analysis.record_vectors import RecordEncoder
from dp_training.classifier_head import ClassifierHead
from embedding_core.errors import FedembedError

__all__ = ["HEAD_TASK", "head_predictions", "head_summary", "is_consortium_head"]

logger = logging.getLogger(__name__)

HEAD_TASK = "classifier"
"""The ``task`` a published head names."""


def is_consortium_head(path: Path) -> bool:
    """Whether ``path`` is a file (a published head), not a classifier folder."""
    return path.is_file()


def _backend(head: ClassifierHead, path: Path) -> str:
    if head.manifest.get("task") != HEAD_TASK:
        raise FedembedError(
            f"--classifier {path} is not a classifier head (task {head.manifest.get('task')!r})",
            expected="the classifier_head.json a task='classifier' run published, or the "
            "folder `fedembed node analyse classify --out` wrote",
            fix="name the run folder's classifier_head.json",
        )
    backend = head.manifest.get("encoder_backend")
    if not isinstance(backend, str) or not backend:
        raise FedembedError(
            f"--classifier {path} names no encoder_backend",
            expected="a head published by a task='classifier' run (it records the backend)",
            fix="republish it from the run",
        )
    return backend


def head_predictions(
    path: Path,
    texts: list[str],
    *,
    model: Path | None,
    encoder_backend: str | None,
    adapter: Path | None,
    cache_dir: Path | None,
) -> Predictions:
    """Label ``texts`` with the head in ``path``, encoded as the run encoded its records.

    Raises:
        FedembedError: The file is not a published head, or the options ask for another
            encoder space than the head was trained in (an adapter, another backend).
    """
    try:
        head = ClassifierHead.load(path)
    except FedembedError as exc:
        raise FedembedError(
            f"--classifier {path}: {exc.problem}",
            expected="the classifier_head.json a task='classifier' run published, or the "
            "folder `fedembed node analyse classify --out` wrote",
            fix="name the run folder's classifier_head.json",
        ) from None
    backend = _backend(head, path)
    if adapter is not None:
        raise FedembedError(
            f"--adapter was given with the consortium head {path}",
            expected="no --adapter: the head was trained on the encoder's own vectors",
            fix="leave out --adapter",
        )
    if encoder_backend is not None and encoder_backend != backend:
        raise FedembedError(
            f"--encoder-backend {encoder_backend} was given, but the head {path} was "
            f"trained on {backend} vectors",
            expected=f"--encoder-backend {backend}, or none (the head's own)",
            fix=f"leave out --encoder-backend or pass --encoder-backend {backend}",
        )
    encoder = RecordEncoder(model=model, encoder_backend=backend, cache_dir=cache_dir)
    classes = list(head.labels)
    if not texts:
        return Predictions(classes, [], np.zeros((0, len(classes))))
    vectors = encoder.encode(texts, what="encode records to predict")
    scores = head.scores(vectors)
    scores -= scores.max(axis=1, keepdims=True)
    probabilities = np.exp(scores)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    labels = [classes[i] for i in np.argmax(probabilities, axis=1)]
    logger.info("predict: %d records by the consortium head (%d labels)", len(texts), len(classes))
    return Predictions(classes, labels, probabilities)


def head_summary(path: Path) -> dict[str, object]:
    """The head's public facts for the command's summary: labels, run, privacy."""
    document = json.loads(path.read_text(encoding="utf-8"))
    privacy = document.get("privacy") or {}
    return {
        "head_run": document.get("run_tag"),
        "head_epsilon": privacy.get("epsilon"),
        "head_delta": privacy.get("delta"),
    }
