"""The node's DP k-means step: the operator's bounds, the ledger's charge, the refusals."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from client_node.kmeans_round import KMeansRoundResult, run_kmeans_round, statistics_vector
from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from dp_training.dp_kmeans import calibrate_dp_kmeans
from embedding_core.errors import FedembedError
from federation.kmeans_settings import KMeansSettings
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings
from privacy import Observer, PrivacyLedger
from tests.client_node.statistics_round_checks import (
    RunRound,
    check_a_ledger_without_room_is_charged_nothing,
    check_a_replayed_round_is_refused,
    check_the_operators_budget_is_enforced_first,
    node_ledger,
    write_node_records,
)

TEXTS = [
    "my card has not arrived yet",
    "when will my new card be delivered",
    "what is the exchange rate for euros",
    "how much do you charge to exchange dollars",
    "my phone was stolen",
    "I lost my phone, block my account",
]
KMEANS = KMeansSettings(k=2, records="records.csv", text_column="text", count_weight=0.3)
SETTINGS = RoundSettings(
    num_server_rounds=3,
    run_tag="kmeans-1",
    aggregation="ckks",
    target_epsilon=4.0,
    dp_noise_shares=3,
)


@pytest.fixture
def node_dir(tmp_path: Path, embedding_cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("FEDEMBED_CACHE_DIR", str(embedding_cache_dir))
    return write_node_records(tmp_path / "node", ["text"], [[t] for t in TEXTS])


def _round(node_dir: Path, server_round: int, *, budget: float = 8.0) -> KMeansRoundResult:
    rng = np.random.default_rng(server_round)
    centroids = np.linalg.qr(rng.normal(size=(384, 2)))[0].T
    return run_kmeans_round(
        node_dir=node_dir,
        node_name="node-a",
        settings=SETTINGS,
        kmeans=KMEANS,
        server_round=server_round,
        centroids=centroids,
        corrections=np.zeros(2),
        node_privacy=NodePrivacy(max_epsilon=budget),
        rng=rng,
    )


def _ledger(node_dir: Path) -> PrivacyLedger:
    return node_ledger(node_dir)


def test_the_run_charges_the_kmeans_epsilon_for_a_fellow_member(node_dir: Path) -> None:
    # Execute: the run's three rounds.
    results = [_round(node_dir, r) for r in (1, 2, 3)]

    # Assert: three full-batch charges composing exactly to the run's epsilon.
    ledger = _ledger(node_dir)
    assert [e["round"] for e in ledger.entries] == [1, 2, 3]
    assert {e["observer"] for e in ledger.entries} == {Observer.FELLOW_MEMBER.value}
    assert ledger.spent_epsilon() == pytest.approx(SETTINGS.target_epsilon, rel=1e-3)
    calibration = calibrate_dp_kmeans(epsilon=4.0, delta=1e-5, rounds=3, shares=3)
    assert calibration.epsilon_for_observer(Observer.FELLOW_MEMBER) == pytest.approx(4.0)
    # What goes into the secure sum: (k, d) sums then k counts, noised.
    vector = statistics_vector(results[0].statistics)
    assert vector.shape == (2 * 384 + 2,)
    counts = results[0].statistics.counts
    assert not np.allclose(counts, np.round(counts))  # the counts carry noise


def _run(node_dir: Path) -> RunRound:
    return lambda server_round, budget: _round(node_dir, server_round, budget=budget)


def test_a_run_over_the_operators_budget_is_refused_before_anything(node_dir: Path) -> None:
    check_the_operators_budget_is_enforced_first(node_dir, _run(node_dir))


def test_a_ledger_without_room_refuses_the_round_and_charges_nothing(node_dir: Path) -> None:
    check_a_ledger_without_room_is_charged_nothing(node_dir, _run(node_dir))


def test_a_replayed_round_is_refused(node_dir: Path) -> None:
    check_a_replayed_round_is_refused(node_dir, _run(node_dir))


@pytest.mark.parametrize(
    ("changes", "message"),
    [({"aggregation": "secaggplus"}, "only inside the CKKS sum"), ({}, "do not describe k=2")],
)
def test_rounds_the_node_cannot_run_safely_are_refused(
    node_dir: Path, changes: dict[str, object], message: str
) -> None:
    settings = dataclasses.replace(SETTINGS, **changes)
    centroids = np.zeros((3 if not changes else 2, 384))
    with pytest.raises(FedembedError, match=message):
        run_kmeans_round(
            node_dir=node_dir,
            node_name="node-a",
            settings=settings,
            kmeans=KMEANS,
            server_round=1,
            centroids=centroids,
            corrections=np.zeros(2),
            node_privacy=NodePrivacy(max_epsilon=8.0),
        )
    assert not (node_dir / STATE_DIR / LEDGER_FILE).exists()
