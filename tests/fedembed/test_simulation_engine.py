"""Node-level DP over 100 virtual nodes on Flower's simulation engine."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedding_core.data import load_beir
from embedding_core.data.federated_split import split_iid, write_shards
from fedembed.simulation import run_simulated_federation
from federation.node_privacy import NodePrivacy
from federation.run_config import FederationConfig
from privacy import node_level_epsilon
from tests.fedembed.conftest import SUBSET_NAME

NODES = 100
PER_ROUND = 10
ROUNDS = 3
NOISE = 1.0


@pytest.mark.slow  # minutes on 2 cores: `make test-all` runs it (benchmarks/RESULTS.md, CI row)
def test_hundred_virtual_nodes_with_node_level_dp(
    consortium_data: tuple[Path, dict[str, Path]], tmp_path: Path
) -> None:
    data_root, _ = consortium_data
    train = load_beir(data_root / SUBSET_NAME, split="train", name=SUBSET_NAME)
    write_shards(split_iid(train, num_nodes=NODES, negatives=8), tmp_path / "members")
    config = FederationConfig(
        num_server_rounds=ROUNDS,
        aggregation="plaintext",
        allow_insecure_plaintext=True,
        dp_enabled=False,
        node_noise_multiplier=NOISE,
        update_clip_norm=0.5,
        min_nodes=PER_ROUND,
        fraction_train=PER_ROUND / NODES,
        local_epochs=2,
        batch_size=8,
        learning_rate=0.01,
        eval_dataset=SUBSET_NAME,
        data_dir=str(data_root),
        out_dir=str(tmp_path / "out"),
    )

    # The members' operators allow rounds without sample-level DP (node-level DP only).
    operator = NodePrivacy(max_epsilon=8.0, require_dp=False)

    summary = run_simulated_federation(
        config, partition_root=tmp_path / "members", num_nodes=NODES, node_privacy=operator
    )

    # Replace-one, PER_ROUND of NODES sampled without replacement (Flower's sampling).
    expected = node_level_epsilon(
        noise_multiplier=NOISE, sampled=PER_ROUND, total_nodes=NODES, rounds=ROUNDS, delta=1e-5
    )
    assert summary["node_level_epsilon"] == pytest.approx(expected, rel=1e-6)
    nodes = summary["nodes"]
    assert isinstance(nodes, list)
    assert PER_ROUND < len(nodes) <= PER_ROUND * ROUNDS
    assert summary["refusals"] == []
    assert set(summary["ndcg@10_per_round"]) == {str(r) for r in range(ROUNDS + 1)}  # type: ignore[arg-type]
