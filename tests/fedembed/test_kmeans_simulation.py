"""DP federated k-means on Flower's simulation engine: the real ServerApp and ClientApp.

The same run as ``tests/coordinator/test_kmeans_strategy.py`` (three BANKING77 members,
CKKS secure sum, 3 noise shares), started through :func:`fedembed.simulation.
run_simulated_federation` with a ``task = "kmeans"`` run config: the coordinator's
``run_federation`` branches to k-means, every virtual node gets its member folder and kit.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from client_node.local_round import LEDGER_FILE
from client_node.node_data import STATE_DIR
from coordinator.kmeans_strategy import CENTROIDS_FILE
from fedembed.simulation import run_simulated_federation
from federation.node_privacy import NodePrivacy
from tests.coordinator.kmeans_consortium import NODES, kmeans_config, make_consortium

EPSILON = 20.0


@pytest.mark.slow  # the simulation engine starts Ray: about 20 s on 2 shared cores
def test_kmeans_runs_on_the_simulation_engine(
    tmp_path: Path, shared_data_dir: Path, embedding_cache_dir: Path
) -> None:
    # Prepare: three members, kits after the CKKS ceremony, a k-means run config.
    consortium = make_consortium(tmp_path / "consortium", shared_data_dir / "banking77")
    config = kmeans_config(consortium, tmp_path / "out", epsilon=EPSILON)

    # Execute
    summary = run_simulated_federation(
        config,
        partition_root=consortium.members,
        num_nodes=len(NODES),
        kit_root=consortium.kits,
        node_privacy=NodePrivacy(max_epsilon=2 * EPSILON),
    )

    # Assert: five rounds of three nodes; the published map is central k-means's.
    assert summary["status"] == "succeeded"
    assert [r["nodes"] for r in summary["rounds"]] == [3] * 5
    ari = consortium.published_ari(tmp_path / "out" / CENTROIDS_FILE, embedding_cache_dir)
    assert ari >= 0.8
    for name in NODES:
        ledger = json.loads((consortium.node_dir(name) / STATE_DIR / LEDGER_FILE).read_text())
        assert ledger["entries"][-1]["epsilon_after"] == pytest.approx(EPSILON, rel=1e-3)
