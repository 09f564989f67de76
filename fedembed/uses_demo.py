"""The main job's members' uses: an intent classifier and a topic map over BANKING77.

Three members hold BANKING77's training queries, split by intent (per intent,
Dirichlet(0.5) shares over the members, seed 0: each member sees some intents often and
others rarely). For each use the table sets three ways side by side:

- **local only**: each member alone on its own records (the mean over the members);
- **federated**: the task through Flower's simulation engine with the product's
  ServerApp and ClientApp (``task = "classifier"`` or ``"kmeans"``): each node's
  statistics leave it only inside the CKKS secure sum, with its DP noise share, charged to
  its own privacy ledger (``uses/members/<node>/state/``) at epsilon 8 per task;
- **centralised**: every record pooled in one place, without DP (the upper reference).

The classifier is scored by accuracy on BANKING77's test queries; the topic map (k-means,
k = 77) by NMI and ARI of the pooled training queries' clusters against their intents.
The federated k-means starts from centroids of BANKING77's test queries (labels unused),
the coordinator's public corpus. Both tasks reuse the federation's kits (after the CKKS
key ceremony); the members' records are CSV files in their own folders, encoded by each
node through the shared embedding cache.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from embedding_core.cache import EmbeddingCache
from embedding_core.encoder import Encoder
from fedembed.demo_steps import DemoSteps
from fedembed.federation_rows import fresh_ledgers, member_epsilons, simulate_published

__all__ = [
    "UsesRecipe",
    "plan_uses",
    "run_statistics_task",
    "run_uses_demo",
    "split_by_label",
    "write_members",
]

USES_NODES = 3
DIRICHLET = 0.5
LOCAL_ONLY = f"local only, own records (mean of {USES_NODES} members)"


@dataclass(frozen=True)
class UsesRecipe:
    """The uses' settings; the defaults are the main job's (BANKING77's 77 intents).

    Attributes:
        epsilon: Each federated task's epsilon per member (delta: the run config's).
        kmeans_k: Clusters of the topic map.
        kmeans_rounds: Rounds of the federated k-means.
        classifier_rounds: Rounds of the federated classifier head.
    """

    epsilon: float = 8.0
    kmeans_k: int = 77
    kmeans_rounds: int = 5
    classifier_rounds: int = 50


def plan_uses(steps: DemoSteps, recipe: UsesRecipe) -> None:
    """Plan the uses' steps, in the order :func:`run_uses_demo` runs them."""
    eps = f"DP eps={recipe.epsilon:g}"
    steps.plan("uses_setup", f"members' uses: encode BANKING77, split over {USES_NODES} members")
    steps.plan(
        "uses_classifier",
        f"members' uses: intent classifier, {eps} ({recipe.classifier_rounds} rounds, "
        "simulation engine), local only, centralised",
    )
    steps.plan(
        "uses_kmeans",
        f"members' uses: topic map, k-means k={recipe.kmeans_k}, {eps} "
        f"({recipe.kmeans_rounds} rounds, simulation engine), local only, centralised",
    )


def split_by_label(
    labels: Sequence[str] | NDArray[np.int64],
    *,
    nodes: int,
    seed: int,
    concentration: float = DIRICHLET,
) -> list[NDArray[np.int64]]:
    """Record indices of each node: per label, Dirichlet(``concentration``) node shares.

    Labels are dealt in sorted order, so string labels and their indices into the sorted
    label names split alike.
    """
    truth = np.unique(np.asarray(labels), return_inverse=True)[1]
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in range(nodes)]
    for label in np.unique(truth):
        members = rng.permutation(np.flatnonzero(truth == label))
        shares = rng.dirichlet([concentration] * nodes)
        cuts = np.round(np.cumsum(shares)[:-1] * len(members)).astype(int)
        for node, chunk in enumerate(np.split(members, cuts)):
            parts[node].extend(int(i) for i in chunk)
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """A CSV file with ``header`` and ``rows`` (its folder made)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def write_members(
    root: Path, header: Sequence[str], rows_per_node: Sequence[Sequence[Sequence[str]]]
) -> dict[str, Path]:
    """``root/node-<i>/records.csv`` for each node's rows; the members' folders by node id."""
    members = {}
    for i, rows in enumerate(rows_per_node):
        folder = root / f"node-{i}"
        write_csv(folder / "records.csv", header, rows)
        members[folder.name] = folder
    return members


def run_statistics_task(
    members: dict[str, Path],
    *,
    kits: Path,
    out_dir: Path,
    budget: float,
    total_rounds: int,
    encoder_backend: str,
    **fields: Any,
) -> dict[str, Any]:
    """Run a statistics task (``fields``: ``task`` and its keys) over ``members``.

    Flower's simulation engine, the CKKS secure sum with one noise share a member, no
    central evaluation; each member's operator allows ``budget`` epsilon in all. Returns
    the run summary; a run that released nothing stops with its reason.
    """
    from federation.node_privacy import NodePrivacy
    from federation.run_config import FederationConfig

    config = FederationConfig(
        aggregation="ckks",
        coordinator_kit=str(kits / "coordinator"),
        dp_noise_shares=len(members),
        min_nodes=len(members),
        eval_dataset="none",
        encoder_backend=encoder_backend,
        out_dir=str(out_dir),
        **fields,
    )
    return simulate_published(
        config,
        members,
        kits=kits,
        node_privacy=NodePrivacy(max_epsilon=budget),
        rounds=total_rounds,
        what=f"federation {config.run_tag}",
    )


def run_uses_demo(
    *,
    data_dir: Path,
    out: Path,
    encoder: Encoder,
    cache: EmbeddingCache,
    kits: Path,
    steps: DemoSteps,
    recipe: UsesRecipe,
) -> dict[str, Any]:
    """Every row of the uses' table (also written to ``out/uses/uses_results.json``)."""
    from analytics import load_labelled_texts
    from federation.run_config import FederationConfig

    work = out / "uses"
    with steps.run("uses_setup"):
        banking = data_dir / "banking77"
        train = load_labelled_texts(banking / "train.csv", label_column="category")
        test = load_labelled_texts(banking / "test.csv", label_column="category")
        train_vectors = cache.get_or_encode(encoder, train.texts, what="encode BANKING77 train")
        test_vectors = cache.get_or_encode(encoder, test.texts, what="encode BANKING77 test")
        labels = train.require_labels()
        nodes = split_by_label(labels, nodes=USES_NODES, seed=0)
        rows = [[train.texts[j], labels[j]] for j in range(len(train))]
        members = write_members(
            work / "members", ["text", "label"], [[rows[j] for j in part] for part in nodes]
        )
        fresh_ledgers(members)  # a new job starts the members' ledgers afresh
        corpus = work / "public_corpus.csv"
        write_csv(corpus, ["text"], [[t] for t in test.texts])
    data = _Uses(
        train_vectors=train_vectors,
        train_labels=labels,
        test_vectors=test_vectors,
        test_labels=test.require_labels(),
        nodes=nodes,
        recipe=recipe,
    )
    budget = 2 * recipe.epsilon
    backend = encoder.backend
    table: list[dict[str, Any]] = []
    with steps.run("uses_classifier"):
        classes = sorted(set(labels))
        summary = run_statistics_task(
            members, kits=kits, out_dir=work / "classifier", budget=budget,
            total_rounds=recipe.classifier_rounds, encoder_backend=backend, task="classifier",
            run_tag="uses-classifier", classifier_labels=",".join(classes),
            classifier_rounds=recipe.classifier_rounds, classifier_epsilon=recipe.epsilon,
        )  # fmt: skip
        table.extend(data.classifier_rows(work / "classifier", summary, member_epsilons(members)))
    with steps.run("uses_kmeans"):
        summary = run_statistics_task(
            members, kits=kits, out_dir=work / "kmeans", budget=budget,
            total_rounds=recipe.kmeans_rounds, encoder_backend=backend, task="kmeans",
            run_tag="uses-kmeans", kmeans_k=recipe.kmeans_k, kmeans_rounds=recipe.kmeans_rounds,
            kmeans_epsilon=recipe.epsilon, kmeans_public_corpus=str(corpus),
        )  # fmt: skip
        table.extend(data.kmeans_rows(work / "kmeans", summary, member_epsilons(members)))
    results = {
        "dataset": "BANKING77",
        "members": {name: len(part) for name, part in zip(members, nodes, strict=True)},
        "split": f"non-IID by intent, per-intent Dirichlet({DIRICHLET}) shares, seed 0",
        "recipe": asdict(recipe),
        "delta": FederationConfig.target_delta,  # the run config's default, which both runs use
        "rows": table,
    }
    (work / "uses_results.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


class _Uses:
    """The pooled and per-member vectors; scores each way of running a use."""

    def __init__(
        self,
        *,
        train_vectors: NDArray[np.float32],
        train_labels: list[str],
        test_vectors: NDArray[np.float32],
        test_labels: list[str],
        nodes: list[NDArray[np.int64]],
        recipe: UsesRecipe,
    ) -> None:
        self.train_vectors, self.train_labels = train_vectors, train_labels
        self.test_vectors, self.test_labels = test_vectors, test_labels
        self.nodes, self.recipe = nodes, recipe
        self.truth = np.unique(np.asarray(train_labels, dtype=str), return_inverse=True)[1]

    def accuracy(self, predicted: Sequence[str]) -> float:
        return float(np.mean([a == b for a, b in zip(self.test_labels, predicted, strict=True)]))

    def clustering(self, clusters: NDArray[np.int64]) -> dict[str, float]:
        from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

        return {
            "nmi": float(normalized_mutual_info_score(self.truth, clusters)),
            "ari": float(adjusted_rand_score(self.truth, clusters)),
        }

    def classifier_rows(
        self, run: Path, summary: dict[str, Any], spent: dict[str, float]
    ) -> list[dict[str, Any]]:
        from analytics import LinearClassifier
        from dp_training.classifier_head import ClassifierHead

        local = [
            self.accuracy(
                LinearClassifier()
                .fit(self.train_vectors[part], [self.train_labels[j] for j in part])
                .predict(self.test_vectors)
            )
            for part in self.nodes
        ]
        head = ClassifierHead.load(run / "classifier_head.json")
        central = LinearClassifier().fit(self.train_vectors, self.train_labels)
        use = "intent classifier (test accuracy)"
        return [
            _row(use, LOCAL_ONLY, {"accuracy": statistics.fmean(local)}, per_member=local),
            _row(use, f"federated, distributed DP eps={self.recipe.epsilon:g}",
                 {"accuracy": self.accuracy(head.predict(self.test_vectors))},
                 run_epsilon=self.recipe.epsilon, spent=spent, rounds=_released(summary)),
            _row(use, "centralised, non-DP",
                 {"accuracy": self.accuracy(central.predict(self.test_vectors))}),
        ]  # fmt: skip

    def kmeans_rows(
        self, run: Path, summary: dict[str, Any], spent: dict[str, float]
    ) -> list[dict[str, Any]]:
        from analytics import assign, kmeans
        from dp_training.dp_kmeans import assign_corrected

        k = self.recipe.kmeans_k
        local = [
            self.clustering(
                assign(
                    self.train_vectors,
                    kmeans(self.train_vectors[part], k, n_init=1, progress=False).centroids,
                )[0]
            )
            for part in self.nodes
        ]
        document = json.loads((run / "kmeans_centroids.json").read_text())
        federated = assign_corrected(
            self.train_vectors,
            np.asarray(document["centroids"]),
            np.asarray(document["corrections"]),
        )
        central = kmeans(self.train_vectors, k, n_init=1, progress=False)
        use = f"topic map, k-means k={k} (NMI)"
        mean_local = {key: statistics.fmean(s[key] for s in local) for key in ("nmi", "ari")}
        return [
            _row(use, LOCAL_ONLY, mean_local,
                 per_member=[s["nmi"] for s in local]),
            _row(use, f"federated, distributed DP eps={self.recipe.epsilon:g}",
                 self.clustering(federated), run_epsilon=self.recipe.epsilon, spent=spent,
                 rounds=_released(summary)),
            _row(use, "centralised, non-DP", self.clustering(central.labels)),
        ]  # fmt: skip


def _released(summary: dict[str, Any]) -> str:
    rounds = summary.get("rounds", [])
    return f"{sum(bool(r.get('released')) for r in rounds)}/{len(rounds)}"


def _row(
    use: str,
    setting: str,
    scores: dict[str, float],
    *,
    run_epsilon: float | None = None,
    spent: dict[str, float] | None = None,
    per_member: list[float] | None = None,
    rounds: str | None = None,
) -> dict[str, Any]:
    row: dict[str, Any] = {"use": use, "setting": setting, **scores}
    if run_epsilon is not None:
        row["run_epsilon"] = run_epsilon
    if spent is not None:
        row["epsilon_per_node"] = spent
    if per_member is not None:
        row["per_member"] = per_member
    if rounds is not None:
        row["rounds_released"] = rounds
    return row
