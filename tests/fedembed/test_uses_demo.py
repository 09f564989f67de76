"""The main job's members' uses: the split, and the table's rows from real Flower runs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedding_core.cache import CACHE_DIR_ENV, EmbeddingCache
from embedding_core.encoder import Encoder
from fedembed.demo_parts import print_uses
from fedembed.demo_steps import DemoSteps
from fedembed.uses_demo import UsesRecipe, plan_uses, run_uses_demo, split_by_label
from kits.ckks_ceremony import run_ckks_ceremony
from kits.provisioning import provision
from tests.coordinator.kmeans_consortium import INTENTS

NODES = ("node-0", "node-1", "node-2")


@settings(max_examples=50, deadline=None)
@given(
    labels=st.lists(st.sampled_from("abcde"), min_size=1, max_size=200),
    nodes=st.integers(min_value=1, max_value=5),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_the_split_deals_every_record_to_exactly_one_member(
    labels: list[str], nodes: int, seed: int
) -> None:
    # Execute
    parts = split_by_label(labels, nodes=nodes, seed=seed)

    # Assert: a partition of the records, the same for the same seed.
    assert len(parts) == nodes
    dealt = np.concatenate(parts)
    assert sorted(dealt.tolist()) == list(range(len(labels)))
    again = split_by_label(labels, nodes=nodes, seed=seed)
    assert all(np.array_equal(a, b) for a, b in zip(parts, again, strict=True))


def test_the_split_is_non_iid_by_label() -> None:
    # Prepare: 10 labels of 300 records each.
    labels = [f"intent-{i % 10}" for i in range(3000)]

    # Execute
    parts = split_by_label(labels, nodes=3, seed=0)

    # Assert: some member holds under a sixth of some label's records, another over half
    # (Dirichlet(0.5) shares; equal shares would give each member a third).
    shares = np.array(
        [[sum(labels[j] == f"intent-{i}" for j in part) / 300 for i in range(10)] for part in parts]
    )
    assert shares.min() < 1 / 6
    assert shares.max() > 1 / 2


def _subset(source: Path, target: Path, per_intent: int) -> None:
    """BANKING77 train and test with the four test intents, ``per_intent`` rows each."""
    target.mkdir(parents=True)
    for split in ("train", "test"):
        with (source / f"{split}.csv").open(newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.DictReader(handle) if r["category"] in INTENTS]
        kept = [r for i in INTENTS for r in [x for x in rows if x["category"] == i][:per_intent]]
        with (target / f"{split}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=["text", "category"])
            writer.writeheader()
            writer.writerows(kept)


@pytest.mark.slow  # two simulation-engine runs, each starting Ray: about a minute
def test_the_uses_table_compares_local_federated_and_centralised(
    tmp_path: Path,
    shared_data_dir: Path,
    embedding_cache_dir: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare: four intents of BANKING77; kits after the members' CKKS ceremony; the
    # nodes share the test session's embedding cache, as the main job's parties do.
    monkeypatch.setenv(CACHE_DIR_ENV, str(embedding_cache_dir))
    data = tmp_path / "data"
    _subset(shared_data_dir / "banking77", data / "banking77", per_intent=60)
    out = tmp_path / "out"
    provision(out / "kits", node_ids=list(NODES))
    run_ckks_ceremony(out / "kits", key_holder=NODES[0])
    recipe = UsesRecipe(epsilon=8.0, kmeans_k=4, kmeans_rounds=3, classifier_rounds=20)
    steps = DemoSteps(echo=lambda line: None)
    plan_uses(steps, recipe)

    # Execute
    uses = run_uses_demo(
        data_dir=data, out=out, encoder=Encoder.load(), cache=EmbeddingCache(embedding_cache_dir),
        kits=out / "kits", steps=steps, recipe=recipe,
    )  # fmt: skip
    print_uses(uses)

    # Assert: three rows a use; the federated ones ran every round through Flower and are
    # charged to every member's ledger, the k-means after the classifier.
    assert uses == json.loads((out / "uses" / "uses_results.json").read_text())
    assert sum(uses["members"].values()) == 4 * 60
    classifier, kmeans = uses["rows"][:3], uses["rows"][3:]
    assert [r["setting"].split(",")[0] for r in classifier] == [
        "local only",
        "federated",
        "centralised",
    ]
    assert classifier[1]["rounds_released"] == "20/20"
    assert kmeans[1]["rounds_released"] == "3/3"
    for node in NODES:
        after_classifier = classifier[1]["epsilon_per_node"][node]
        after_kmeans = kmeans[1]["epsilon_per_node"][node]
        assert after_classifier == pytest.approx(8.0, rel=1e-3)
        assert 8.0 < after_kmeans <= 16.0 + 1e-6  # composed, never above the two budgets
    # Four well-separated intents: every way classifies and clusters far above chance.
    assert classifier[1]["accuracy"] >= 0.75
    assert classifier[2]["accuracy"] >= 0.9
    assert kmeans[1]["nmi"] >= 0.4
    assert kmeans[2]["nmi"] >= 0.6
    printed = capsys.readouterr().out
    assert "intent classifier (test accuracy)" in printed
    assert "federated, distributed DP eps=8" in printed
    assert [s.key for s in steps.steps if s.seconds is not None] == [
        "uses_setup",
        "uses_classifier",
        "uses_kmeans",
    ]
