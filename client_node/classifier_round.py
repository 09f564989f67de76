"""One round of the DP federated classifier head on a member node, and its Flower handler.

The node step of :mod:`dp_training.federated_classifier`, with the node's own bounds: the
round's privacy settings must pass the operator's ``NodePrivacy``, the node's ledger must
hold the round's charge (the classifier epsilon for the strictest observer, a fellow
member), then the node encodes its labelled records (``classifier-records`` in its data
folder, through the embedding cache), keeps those whose label is in the public label set
(the others are skipped and counted in the node's result only, never sent), and adds its
noise share to the clipped gradient sum and the record count
(:func:`~dp_training.dp_classifier_head.noisy_node_gradient`). The ledger is charged
before anything leaves the node (:mod:`client_node.statistics_round`, as for k-means).

:func:`classifier_train` (the ClientApp's ``train`` action ``classifier``) sends them only
inside the CKKS secure sum, encrypted, signed and recorded exactly as a training update
(as :mod:`client_node.kmeans_round`). :func:`predict_texts` classifies a node's texts with
a published head.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import Context, Message
from numpy.typing import NDArray

from client_node.statistics_reply import node_cache_dir, record_encoder
from client_node.statistics_round import (
    StatisticsRequest,
    StatisticsTask,
    charged_statistics_round,
    check_statistics_round,
    statistics_handler,
)
from dp_training.classifier_head import ClassifierHead
from dp_training.dp_classifier_head import (
    DPClassifierCalibration,
    NoisyGradient,
    calibrate_dp_classifier,
    label_targets,
    noisy_node_gradient,
)
from embedding_core.errors import FedembedError
from federation.classifier_settings import ClassifierContentKey, ClassifierSettings
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings

__all__ = [
    "CLASSIFIER_TASK",
    "ClassifierRoundResult",
    "classifier_train",
    "predict_texts",
    "run_classifier_round",
]

logger = logging.getLogger(__name__)

CLASSIFIER_TASK = StatisticsTask(
    name="classifier", label="classifier", released="gradients", coordinator_runs="the classifier"
)


@dataclass(frozen=True)
class ClassifierRoundResult:
    """The node's noisy gradient (for the secure sum only) and its privacy metrics.

    ``skipped``: records whose label is outside the set (kept on the node, never sent).
    """

    gradient: NoisyGradient
    metrics: dict[str, float]
    skipped: int


def _labelled_vectors(
    node_dir: Path, classifier: ClassifierSettings, backend: str
) -> tuple[NDArray[np.float32], NDArray[np.int64], int]:
    """The node's records in the label set, encoded; targets; how many were skipped."""
    from analytics import load_labelled_texts

    records = load_labelled_texts(
        node_dir / classifier.records,
        text_column=classifier.text_column,
        label_column=classifier.label_column,
    )
    targets, kept = label_targets(records.require_labels(), classifier.labels)
    texts = [t for t, keep in zip(records.texts, kept, strict=True) if keep]
    skipped = int((~kept).sum())
    if not texts:  # every record outside the label set: the node sends noise only
        return np.zeros((0, 0), dtype=np.float32), targets, skipped
    encoder = record_encoder(backend, node_cache_dir(node_dir))
    return encoder.encode(texts, what="classifier records"), targets, skipped


def run_classifier_round(
    *,
    node_dir: str | Path,
    node_name: str,
    settings: RoundSettings,
    classifier: ClassifierSettings,
    server_round: int,
    weights: NDArray[np.floating],
    bias: NDArray[np.floating],
    node_privacy: NodePrivacy,
    rng: np.random.Generator | None = None,
) -> ClassifierRoundResult:
    """The node's classifier step for round ``server_round``, charged to its ledger.

    ``rng`` draws the noise share (default: seeded by the operating system).

    Raises:
        RoundRefusedError: The round asks for less privacy than the operator allows.
        BudgetExceededError: The round would take the node past its privacy budget.
        LedgerError: This round of this run was charged before (a replay).
        FedembedError: Not CKKS, a malformed head, or no readable labelled records.
        In every case nothing is released and nothing is charged.
    """
    check_statistics_round(
        CLASSIFIER_TASK, settings, node_name=node_name, server_round=server_round
    )
    head = np.asarray(weights, dtype=np.float64)
    offsets = np.asarray(bias, dtype=np.float64)
    k = len(classifier.labels)
    if head.ndim != 2 or head.shape[0] != k or offsets.shape != (k,):
        raise FedembedError(
            f"the coordinator's head {head.shape} / bias {offsets.shape} does not describe "
            f"{k} labels",
            fix="run the coordinator's ServerApp",
        )
    if not (np.all(np.isfinite(head)) and np.all(np.isfinite(offsets))):
        raise FedembedError("the coordinator's classifier head is not finite")
    folder = Path(node_dir)
    skipped = 0

    def calibrate() -> DPClassifierCalibration:
        return calibrate_dp_classifier(
            epsilon=settings.target_epsilon,
            delta=settings.target_delta,
            rounds=settings.num_server_rounds,
            shares=settings.dp_noise_shares,
            clip=classifier.clip,
            count_weight=classifier.count_weight,
        )

    def compute(calibration: DPClassifierCalibration) -> NoisyGradient:
        nonlocal skipped
        vectors, targets, skipped = _labelled_vectors(folder, classifier, settings.encoder_backend)
        if vectors.shape[0] and vectors.shape[1] != head.shape[1]:
            raise FedembedError(
                f"node {node_name}'s record vectors have {vectors.shape[1]} dimensions, the "
                f"head {head.shape[1]}",
                expected="a head from the run's encoder backend",
                fix="run the coordinator and the nodes with one encoder-backend",
            )
        if not vectors.shape[0]:
            vectors = np.zeros((0, head.shape[1]), dtype=np.float32)
        return noisy_node_gradient(
            vectors,
            targets,
            head,
            offsets,
            clip=classifier.clip,
            noise_std_share=calibration.noise_std_share,
            rng=rng if rng is not None else np.random.default_rng(),
            count_weight=classifier.count_weight,
        )

    gradient, metrics = charged_statistics_round(
        CLASSIFIER_TASK,
        node_dir=folder,
        node_name=node_name,
        settings=settings,
        server_round=server_round,
        node_privacy=node_privacy,
        calibrate=calibrate,
        compute=compute,
    )
    if skipped:
        logger.info(
            "classifier: node=%s skipped %d records outside the label set", node_name, skipped
        )
    return ClassifierRoundResult(gradient=gradient, metrics=metrics, skipped=skipped)


def _classifier_step(
    msg: Message, request: StatisticsRequest
) -> tuple[NDArray[np.float64], dict[str, float]]:
    classifier = ClassifierSettings.from_record(
        dict(msg.content.config_records[ClassifierContentKey.SETTINGS.value])
    )
    state = msg.content.array_records[ClassifierContentKey.STATE.value]
    result = run_classifier_round(
        node_dir=request.data_dir,
        node_name=request.node_name,
        settings=request.settings,
        classifier=classifier,
        server_round=request.server_round,
        weights=state["weights"].numpy(),
        bias=state["bias"].numpy(),
        node_privacy=request.node_privacy,
    )
    return result.gradient.vector(classifier.count_weight), result.metrics


def classifier_train(msg: Message, context: Context) -> Message:
    """The ClientApp's ``train.classifier`` handler: one encrypted, charged gradient step."""
    return statistics_handler(
        msg, context, CLASSIFIER_TASK, lambda request: _classifier_step(msg, request)
    )


def predict_texts(
    head_file: str | Path, texts: Sequence[str], *, cache_dir: str | Path | None = None
) -> list[str]:
    """Each text's label by a published head, encoded with the head's encoder backend.

    The texts never leave the node; the embedding cache is ``cache_dir``, else
    ``$FEDEMBED_CACHE_DIR``, else the usual default.
    """
    from embedding_core.cache import default_cache_dir

    head = ClassifierHead.load(head_file)
    backend = str(head.manifest.get("encoder_backend") or "")
    if not backend:
        raise FedembedError(
            f"the classifier head {head_file} names no encoder_backend",
            fix="republish it from a task='classifier' run",
        )
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    vectors = record_encoder(backend, cache).encode(list(texts), what="texts to classify")
    return head.predict(vectors)
