"""One round of the DP federated classifier head on a member node, and its Flower handler.

The node step of :mod:`dp_training.federated_classifier`, with the node's own bounds: the
round's privacy settings must pass the operator's ``NodePrivacy``, the node's ledger must
hold the round's charge (the classifier epsilon for the strictest observer, a fellow
member), then the node encodes its labelled records (``classifier-records`` in its data
folder, through the embedding cache), keeps those whose label is in the public label set
(the others are skipped and counted in the node's result only, never sent), and adds its
noise share to the clipped gradient sum and the record count
(:func:`~dp_training.dp_classifier_head.noisy_node_gradient`). The ledger is charged
before anything leaves the node.

:func:`classifier_train` (the ClientApp's ``train`` action ``classifier``) sends them only
inside the CKKS secure sum, encrypted, signed and recorded exactly as a training update
(as :mod:`client_node.kmeans_round`). :func:`predict_texts` classifies a node's texts with
a published head.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from flwr.app import Context, Error, Message
from numpy.typing import NDArray

from client_node.kmeans_round import EMBEDDING_CACHE_DIR, ERROR_CODE_NODE_REFUSED
from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from client_node.statistics_reply import encrypted_reply, node_name_of, record_encoder
from dp_training.classifier_head import ClassifierHead
from dp_training.dp_classifier_head import (
    NoisyGradient,
    calibrate_dp_classifier,
    label_targets,
    noisy_node_gradient,
)
from embedding_core.app_logging import configure_logging
from embedding_core.cache import CACHE_DIR_ENV
from embedding_core.errors import FedembedError
from federation.classifier_settings import ClassifierContentKey, ClassifierSettings
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings, server_round_of
from federation.wire import AggregationMode, ContentKey, MetricKey, NodeConfigKey
from privacy import Observer, PrivacyLedger
from privacy.observers import noise_ratio

__all__ = ["ClassifierRoundResult", "classifier_train", "predict_texts", "run_classifier_round"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClassifierRoundResult:
    """The node's noisy gradient (for the secure sum only) and its privacy metrics.

    ``skipped``: records whose label is outside the set (kept on the node, never sent).
    """

    gradient: NoisyGradient
    metrics: dict[str, float]
    skipped: int


def _cache_dir(node_dir: Path) -> Path:
    # As the node's training data: $FEDEMBED_CACHE_DIR, else the node's own state folder.
    return Path(os.environ.get(CACHE_DIR_ENV) or node_dir / STATE_DIR / EMBEDDING_CACHE_DIR)


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
    encoder = record_encoder(backend, _cache_dir(node_dir))
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
    if settings.aggregation != AggregationMode.CKKS:
        raise FedembedError(
            f"node {node_name} refuses a classifier round with aggregation="
            f"{settings.aggregation!r}: its gradients may leave only inside the CKKS sum",
            expected="aggregation='ckks'",
            fix="the coordinator runs the classifier with aggregation='ckks'",
        )
    if not 1 <= server_round <= settings.num_server_rounds:
        raise FedembedError(
            f"round {server_round} is outside the run's {settings.num_server_rounds} rounds",
            expected=f"a round in 1..{settings.num_server_rounds}",
            fix="run the coordinator's ServerApp (it numbers every round)",
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
    node_privacy.check_round(settings, node_name=node_name)
    calibration = calibrate_dp_classifier(
        epsilon=settings.target_epsilon,
        delta=settings.target_delta,
        rounds=settings.num_server_rounds,
        shares=settings.dp_noise_shares,
        clip=classifier.clip,
        count_weight=classifier.count_weight,
    )
    # The fellow member's per-round noise multiplier sqrt(T) / mu: T full-batch charges
    # compose exactly (Gaussian DP) to the classifier epsilon for that observer.
    charged = calibration.noise_multiplier * noise_ratio(
        observer=Observer.FELLOW_MEMBER, shares=calibration.shares
    )
    own_noise = calibration.noise_std_share / calibration.sensitivity
    node_privacy.check_noise(own_noise, node_name=node_name)
    folder = Path(node_dir)
    ledger = PrivacyLedger.open(
        folder / STATE_DIR / LEDGER_FILE,
        node_id=node_name,
        max_epsilon=node_privacy.max_epsilon,
        delta=settings.target_delta,
    )
    ledger.check_new_round(run_id=settings.run_tag, round=server_round)
    ledger.check(noise_multiplier=charged, sample_rate=1.0, steps=1)
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
    gradient = noisy_node_gradient(
        vectors,
        targets,
        head,
        offsets,
        clip=classifier.clip,
        noise_std_share=calibration.noise_std_share,
        rng=rng if rng is not None else np.random.default_rng(),
        count_weight=classifier.count_weight,
    )
    spent = ledger.charge(
        noise_multiplier=charged,
        sample_rate=1.0,
        steps=1,
        run_id=settings.run_tag,
        round=server_round,
        observer=Observer.FELLOW_MEMBER,
    )
    logger.info("classifier: node=%s round=%d epsilon=%.4f", node_name, server_round, spent)
    if skipped:
        logger.info(
            "classifier: node=%s skipped %d records outside the label set", node_name, skipped
        )
    metrics = {
        MetricKey.UNIT_WEIGHT.value: 1.0,
        MetricKey.EPSILON.value: spent,
        MetricKey.NOISE_MULTIPLIER.value: calibration.noise_multiplier,
        MetricKey.NOISE_SHARE.value: own_noise,
        MetricKey.CHARGED_NOISE.value: charged,
        MetricKey.SAMPLE_RATE.value: 1.0,
        MetricKey.STEPS.value: 1.0,
    }
    return ClassifierRoundResult(gradient=gradient, metrics=metrics, skipped=skipped)


def classifier_train(msg: Message, context: Context) -> Message:
    """The ClientApp's ``train.classifier`` handler: one encrypted, charged gradient step."""
    configure_logging()
    node_name = node_name_of(context)
    try:
        data_dir = context.node_config.get(NodeConfigKey.DATA_DIR.value)
        if not data_dir:
            raise FedembedError(
                f"node {node_name} has no data folder",
                expected="--node-config \"data-dir='/path/to/node'\"",
                fix="restart the SuperNode with data-dir in --node-config",
            )
        config = dict(msg.content.config_records[ContentKey.CONFIG.value])
        settings = RoundSettings.from_record(config)
        server_round = server_round_of(config, settings)
        classifier = ClassifierSettings.from_record(
            dict(msg.content.config_records[ClassifierContentKey.SETTINGS.value])
        )
        state = msg.content.array_records[ClassifierContentKey.STATE.value]
        result = run_classifier_round(
            node_dir=str(data_dir),
            node_name=node_name,
            settings=settings,
            classifier=classifier,
            server_round=server_round,
            weights=state["weights"].numpy(),
            bias=state["bias"].numpy(),
            node_privacy=NodePrivacy.from_node_config(context.node_config),
        )
        vector = result.gradient.vector(classifier.count_weight)
        if not np.all(np.isfinite(vector)):
            raise FedembedError(f"node {node_name}: non-finite classifier gradient")
        return encrypted_reply(msg, context, vector, result.metrics)
    except (FedembedError, KeyError) as exc:
        logger.warning("classifier: node=%s refused: %s", node_name, exc)
        return Message(
            Error(code=ERROR_CODE_NODE_REFUSED, reason=f"{node_name}: {exc}"), reply_to=msg
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
