"""The DP federated classifier head through the real ClientApp and the coordinator's loop.

Three labelled BANKING77 members (``classifier_consortium``), every message delivered in
process to the node's real ClientApp (its ``train.classifier`` handler, CKKS encryption
and signing, ledger, endorsement and decryption): the published head classifies held-out
texts far above chance, every node's ledger holds the classifier epsilon, the
coordinator never receives one node's gradient in plaintext, and a node whose budget is
too small refuses while the others run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from coordinator.classifier_strategy import HEAD_FILE, run_classifier_federation
from dp_training.classifier_head import ClassifierHead
from dp_training.dp_classifier_head import (
    calibrate_dp_classifier,
    clipped_gradient_sum,
)
from federation.classifier_settings import CLASSIFIER_MESSAGE_TYPE
from privacy import Observer
from tests.coordinator.classifier_consortium import (
    ClassifierConsortium,
    classifier_config,
    make_classifier_consortium,
)
from tests.coordinator.kmeans_consortium import INTENTS
from tests.coordinator.statistics_nodes import (
    RecordingLoopback,
    assert_ciphertext_only,
    assert_every_ledger_charged,
    decrypted_sums,
    ledger_of,
    member_grid,
    probe_single_decryption,
    round_state,
)

EPSILON = 8.0
"""5 rounds at epsilon 8 reach 0.94-1.0 held-out accuracy in each of 5 noise seeds in
process (dp_training.federated_classifier); the test asks for 0.8 (chance: 0.25)."""
LENGTH = len(INTENTS) * 385 + 1


@pytest.fixture(scope="module")
def consortium(
    tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path
) -> ClassifierConsortium:
    return make_classifier_consortium(
        tmp_path_factory.mktemp("classifier"), shared_data_dir / "banking77"
    )


def _grid(
    consortium: ClassifierConsortium, root: Path, budgets: dict[str, float]
) -> RecordingLoopback:
    return member_grid(consortium, root, budgets, default_budget=2 * EPSILON)


@pytest.mark.usefixtures("server_app_process")
def test_the_published_head_classifies_held_out_texts_and_every_ledger_is_charged(
    consortium: ClassifierConsortium, tmp_path: Path, embedding_cache_dir: Path
) -> None:
    # Prepare
    grid = _grid(consortium, tmp_path / "nodes", {})
    config = classifier_config(consortium, tmp_path / "out", epsilon=EPSILON)

    # Execute
    summary = run_classifier_federation(grid, config)

    # Assert: every round aggregated the three nodes; the head is accurate on held-out texts.
    assert summary["status"] == "succeeded"
    assert [r["nodes"] for r in summary["rounds"]] == [3] * 5  # type: ignore[index]
    head = ClassifierHead.load(tmp_path / "out" / HEAD_FILE)
    assert head.labels == INTENTS
    assert head.manifest["privacy"]["epsilon"] == EPSILON
    assert head.manifest["privacy"]["observer"] == Observer.FELLOW_MEMBER.value
    assert head.manifest["encoder_backend"] == config.encoder_backend
    predicted = head.predict(consortium.held_out_vectors(embedding_cache_dir))
    truth = [label for _, label in consortium.held_out]
    assert np.mean(np.array(predicted) == truth) >= 0.8
    assert_every_ledger_charged(
        tmp_path / "nodes", run_id="classifier-run", epsilon=EPSILON, rounds=5
    )


@pytest.mark.usefixtures("server_app_process")
def test_the_coordinator_never_receives_one_nodes_gradient_in_plaintext(
    consortium: ClassifierConsortium, tmp_path: Path, embedding_cache_dir: Path
) -> None:
    # Prepare
    grid = _grid(consortium, tmp_path / "nodes", {})
    config = classifier_config(consortium, tmp_path / "out", epsilon=EPSILON)

    # Execute: the run, then a coordinator that asks a node to decrypt one contribution.
    run_classifier_federation(grid, config)
    replies = [r for r in grid.received if r.metadata.message_type == CLASSIFIER_MESSAGE_TYPE]
    refused = probe_single_decryption(grid, replies, run_tag="classifier-run", length=LENGTH)

    # Assert: each node's reply is ciphertext and privacy bookkeeping only.
    assert len(replies) == 15
    assert_ciphertext_only(replies)
    # The only plaintext gradients: one decrypted sum a round, holding the noise.
    sums = decrypted_sums(grid)
    assert len(sums) == 5
    calibration = calibrate_dp_classifier(
        epsilon=EPSILON, delta=1e-5, rounds=5, shares=3, clip=1.0, count_weight=0.3
    )
    state = round_state(grid, CLASSIFIER_MESSAGE_TYPE, "classifier-state", 5)
    vectors, targets = consortium.pooled_records(embedding_cache_dir)
    exact = clipped_gradient_sum(
        state["weights"].numpy(), state["bias"].numpy(), vectors, targets, clip=1.0
    )
    residual = sums[-1][: LENGTH - 1] - exact.ravel()
    # The sum holds noise of std sum_noise_std per coordinate (10 %: > 5 standard errors).
    assert np.std(residual) == pytest.approx(calibration.sum_noise_std, rel=0.1)
    # A node decrypts no single contribution, whatever the coordinator asks.
    assert refused.has_error()


@pytest.mark.usefixtures("server_app_process")
def test_a_node_whose_budget_is_too_small_refuses_and_the_others_run(
    consortium: ClassifierConsortium, tmp_path: Path
) -> None:
    # Prepare: node-2's operator allows less than the run's epsilon; t = 2 of 3.
    grid = _grid(consortium, tmp_path / "nodes", {"node-2": EPSILON / 4})
    config = classifier_config(consortium, tmp_path / "out", epsilon=EPSILON, shares=2)

    # Execute
    summary = run_classifier_federation(grid, config)

    # Assert: node-2 refused every round and was charged nothing; the others ran.
    assert summary["status"] == "succeeded"
    assert [r["nodes"] for r in summary["rounds"]] == [2] * 5  # type: ignore[index]
    refusals = summary["refusals"]
    assert isinstance(refusals, list)
    assert len(refusals) == 5
    assert all("node-2 refuses" in r["reason"] for r in refusals)
    assert not (tmp_path / "nodes" / "node-2" / STATE_DIR / LEDGER_FILE).exists()
    assert len(ledger_of(tmp_path / "nodes", "node-0")["entries"]) == 5
