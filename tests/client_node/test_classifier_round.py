"""The node's DP classifier step: the operator's bounds, the ledger's charge, the refusals."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from client_node.classifier_round import (
    ClassifierRoundResult,
    predict_texts,
    run_classifier_round,
)
from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from dp_training.dp_classifier_head import calibrate_dp_classifier
from embedding_core.errors import FedembedError
from federation.classifier_settings import ClassifierSettings
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings
from federation.wire import MetricKey
from privacy import Observer, PrivacyLedger
from tests.client_node.statistics_round_checks import (
    RunRound,
    check_a_ledger_without_room_is_charged_nothing,
    check_a_replayed_round_is_refused,
    check_the_operators_budget_is_enforced_first,
    node_ledger,
    write_node_records,
)

RECORDS = [
    ("my card has not arrived yet", "card"),
    ("when will my new card be delivered", "card"),
    ("what is the exchange rate for euros", "exchange"),
    ("how much do you charge to exchange dollars", "exchange"),
    ("my phone was stolen", "phone"),
]
CLASSIFIER = ClassifierSettings(
    labels=("card", "exchange"),
    records="records.csv",
    text_column="text",
    label_column="label",
    clip=1.0,
    count_weight=0.3,
)
SETTINGS = RoundSettings(
    num_server_rounds=3,
    run_tag="classifier-1",
    aggregation="ckks",
    target_epsilon=4.0,
    dp_noise_shares=3,
)


@pytest.fixture
def node_dir(tmp_path: Path, embedding_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEDEMBED_CACHE_DIR", str(embedding_cache_dir))
    return write_node_records(tmp_path / "node", ["text", "label"], RECORDS)


def _round(
    node_dir: Path, server_round: int, *, budget: float = 8.0, weights: np.ndarray | None = None
) -> ClassifierRoundResult:
    return run_classifier_round(
        node_dir=node_dir,
        node_name="node-a",
        settings=SETTINGS,
        classifier=CLASSIFIER,
        server_round=server_round,
        weights=np.zeros((2, 384)) if weights is None else weights,
        bias=np.zeros(2),
        node_privacy=NodePrivacy(max_epsilon=budget),
        rng=np.random.default_rng(server_round),
    )


def _ledger(node_dir: Path) -> PrivacyLedger:
    return node_ledger(node_dir)


def test_the_run_charges_the_classifier_epsilon_for_a_fellow_member(node_dir: Path) -> None:
    # Execute: the run's three rounds.
    results = [_round(node_dir, r) for r in (1, 2, 3)]

    # Assert: three full-batch charges composing exactly to the run's epsilon.
    ledger = _ledger(node_dir)
    assert [e["round"] for e in ledger.entries] == [1, 2, 3]
    assert {e["observer"] for e in ledger.entries} == {Observer.FELLOW_MEMBER.value}
    assert ledger.spent_epsilon() == pytest.approx(SETTINGS.target_epsilon, rel=1e-3)
    calibration = calibrate_dp_classifier(epsilon=4.0, delta=1e-5, rounds=3, shares=3)
    assert calibration.epsilon_for_observer(Observer.FELLOW_MEMBER) == pytest.approx(4.0)
    # What goes into the secure sum: the (k, d + 1) gradient, then w * count, noised;
    # the record outside the label set was skipped and stays on the node.
    result = results[0]
    assert result.gradient.vector(0.3).shape == (2 * 385 + 1,)
    assert result.skipped == 1
    assert result.gradient.count != 4.0  # the count carries noise
    assert result.metrics[MetricKey.EPSILON.value] == pytest.approx(
        ledger.entries[0]["epsilon_after"]
    )


def _run(node_dir: Path) -> RunRound:
    return lambda server_round, budget: _round(node_dir, server_round, budget=budget)


def test_a_run_over_the_operators_budget_is_refused_before_anything(node_dir: Path) -> None:
    check_the_operators_budget_is_enforced_first(node_dir, _run(node_dir))


def test_a_ledger_without_room_refuses_the_round_and_charges_nothing(node_dir: Path) -> None:
    check_a_ledger_without_room_is_charged_nothing(node_dir, _run(node_dir))


def test_a_replayed_round_is_refused(node_dir: Path) -> None:
    check_a_replayed_round_is_refused(node_dir, _run(node_dir))


@pytest.mark.parametrize(
    ("changes", "weights", "message"),
    [
        ({"aggregation": "secaggplus"}, np.zeros((2, 384)), "only inside the CKKS sum"),
        ({}, np.zeros((3, 384)), "does not describe 2 labels"),
        ({}, np.full((2, 384), np.nan), "not finite"),
    ],
)
def test_rounds_the_node_cannot_run_safely_are_refused(
    node_dir: Path, changes: dict[str, object], weights: np.ndarray, message: str
) -> None:
    settings = dataclasses.replace(SETTINGS, **changes)
    with pytest.raises(FedembedError, match=message):
        run_classifier_round(
            node_dir=node_dir,
            node_name="node-a",
            settings=settings,
            classifier=CLASSIFIER,
            server_round=1,
            weights=weights,
            bias=np.zeros(2),
            node_privacy=NodePrivacy(max_epsilon=8.0),
        )
    assert not (node_dir / STATE_DIR / LEDGER_FILE).exists()


def test_a_missing_label_column_is_refused_and_charges_nothing(node_dir: Path) -> None:
    classifier = dataclasses.replace(CLASSIFIER, label_column="intent")
    with pytest.raises(FedembedError, match="intent"):
        run_classifier_round(
            node_dir=node_dir,
            node_name="node-a",
            settings=SETTINGS,
            classifier=classifier,
            server_round=1,
            weights=np.zeros((2, 384)),
            bias=np.zeros(2),
            node_privacy=NodePrivacy(max_epsilon=8.0),
        )
    assert _ledger(node_dir).entries == []


def test_a_node_predicts_its_texts_with_a_published_head(
    tmp_path: Path, embedding_cache_dir: Path
) -> None:
    # Prepare: a head whose rows are the mean vectors of two labels' texts.
    from embedding_core.cache import EmbeddingCache
    from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, Encoder

    vectors = EmbeddingCache(embedding_cache_dir).get_or_encode(
        Encoder.load(), [t for t, _ in RECORDS[:4]]
    )
    weights = np.stack([vectors[:2].mean(axis=0), vectors[2:4].mean(axis=0)]) * 10
    head = tmp_path / "classifier_head.json"
    head.write_text(
        json.dumps(
            {
                "labels": ["card", "exchange"],
                "weights": weights.tolist(),
                "bias": [0.0, 0.0],
                "encoder_backend": DEFAULT_ENCODER_BACKEND,
            }
        )
    )

    # Execute
    predicted = predict_texts(
        head, ["is my card on its way", "euro to dollar rate"], cache_dir=embedding_cache_dir
    )

    # Assert
    assert predicted == ["card", "exchange"]
