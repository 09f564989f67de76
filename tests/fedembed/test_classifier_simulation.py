"""The DP federated classifier head on Flower's simulation engine: real ServerApp, ClientApp.

The run of ``tests/coordinator/test_classifier_strategy.py`` (three labelled BANKING77
members, CKKS secure sum, 3 noise shares), started through :func:`fedembed.simulation.
run_simulated_federation` with a ``task = "classifier"`` run config: the coordinator's
``run_federation`` branches to the classifier, every virtual node gets its member
folder and kit.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from coordinator.classifier_strategy import HEAD_FILE
from dp_training.classifier_head import ClassifierHead
from fedembed.simulation import run_simulated_federation
from federation.node_privacy import NodePrivacy
from tests.coordinator.classifier_consortium import (
    classifier_config,
    make_classifier_consortium,
)
from tests.coordinator.kmeans_consortium import NODES

EPSILON = 8.0


@pytest.mark.slow  # the simulation engine starts Ray: about 20 s on 2 shared cores
def test_the_classifier_head_trains_on_the_simulation_engine(
    tmp_path: Path, shared_data_dir: Path, embedding_cache_dir: Path
) -> None:
    # Prepare: three labelled members, kits after the CKKS ceremony, a classifier config.
    consortium = make_classifier_consortium(tmp_path / "consortium", shared_data_dir / "banking77")
    config = classifier_config(consortium, tmp_path / "out", epsilon=EPSILON)

    # Execute
    summary = run_simulated_federation(
        config,
        partition_root=consortium.members,
        num_nodes=len(NODES),
        kit_root=consortium.kits,
        node_privacy=NodePrivacy(max_epsilon=2 * EPSILON),
    )

    # Assert: five rounds of three nodes; the head classifies held-out texts.
    assert summary["status"] == "succeeded"
    assert [r["nodes"] for r in summary["rounds"]] == [3] * 5
    head = ClassifierHead.load(tmp_path / "out" / HEAD_FILE)
    predicted = head.predict(consortium.held_out_vectors(embedding_cache_dir))
    truth = [label for _, label in consortium.held_out]
    assert np.mean(np.array(predicted) == truth) >= 0.8
    for name in NODES:
        ledger = json.loads((consortium.node_dir(name) / STATE_DIR / LEDGER_FILE).read_text())
        assert ledger["entries"][-1]["epsilon_after"] == pytest.approx(EPSILON, rel=1e-3)
