"""Membership inference against SciFact query adapters: overfit non-DP vs DP-SGD (eps 8).

The game (Carlini et al., IEEE S&P 2022): ``K = --shadows`` adapters per recipe are
trained on balanced random halves of SciFact's 919 train (query, relevant document)
records (each record IN half of the shadows), and ``T = --targets`` target adapters apart
from them, each on its own random half drawn independently of the shadows'. Every attack
is scored on the targets' ``T * 919`` (score, membership) pairs; the "single target" AUC
is target 0 alone against 919 records. Beside the attacks, the no-signal control (online
LiRA on confidences shuffled across models) shows the evaluation at chance.
Attacks: loss / similarity / rank thresholds, loss calibrated by the base encoder,
online and offline LiRA (fixed variance) on the logit-scaled softmax probability of the
relevant document over the 5,183-document corpus.

Recipes: ``overfit`` (non-DP, 50 epochs, batch 64, Adam 3e-3, no weight decay) and ``dp``
(centralised_adapter's DP recipe: full batch, 100 epochs, Adam 3e-3, clip 1, noise for
``--epsilon`` at ``--delta`` with the RDP accountant). Secondary target: the released
federated DP adapter (``--demo-adapter``), members = its nodes' train pairs (all 919),
non-members = SciFact TEST pairs: train and test queries differ, so the base encoder
alone already "separates" them; its row is printed as the bias baseline.

Prints one JSON line per (target, attack) and writes a log-log ROC plot to ``--out``.

    nice -n 19 .venv/bin/python benchmarks/bench_membership.py --shadows 16 --targets 4 \
        --epsilon 8 1 --out benchmarks/membership_roc.png    # about 6 minutes on 2 cores

``--adapter-kind shift`` plays every recipe on the shift adapter (the release's shape);
``--plan`` adds the DP recipe at the epsilon ``fedembed policy plan`` gives for the
default policy (its proven AUC bound is the policy's limit):

    .venv/bin/python benchmarks/bench_membership.py --adapter-kind shift --plan --epsilon 8 \
        --shadows 16 --out benchmarks/membership_roc_shift.png    # about 7 minutes
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

# Beside this script (a site-packages "benchmarks" package shadows the folder's name).
sys.path.insert(0, str(Path(__file__).resolve().parent))

from centralised_adapter import load_interactions

from attacks.base import AttackReport
from attacks.membership_game import (
    DP_EPOCHS,
    TEMPERATURE,
    THREAT_CALIBRATED,
    THREAT_THRESHOLD,
    dp_trainer,
    game_reports,
    gdp_auc_bound,
    overfit_trainer,
    play_game,
)
from attacks.membership_inference import (
    attack_report,
    calibrated_loss_scores,
    record_statistics,
    threshold_scores,
)
from dp_training import InteractionSet
from embedding_core import Adapter
from embedding_core.data.beir import BeirDataset
from embedding_core.evaluation.retrieval import RetrievalVectors, score_retrieval

DEFAULT_DATA = Path("/work/shared/data/scifact")
DEFAULT_CACHE = Path("/work/fedembed-cache")
DEFAULT_DEMO = Path("/work/demo-run2/out")
DEFAULT_DEMO_ADAPTER = Path("runs") / "dp-eps8" / "global_adapter"


def _demo_pairs(
    demo: Path, data_dir: Path, pool: InteractionSet, vectors: RetrievalVectors, test: BeirDataset
) -> tuple[InteractionSet, NDArray[np.bool_], int]:
    """Members = the demo nodes' train pairs (checked against SciFact train), non-members
    = SciFact test pairs."""
    from embedding_core.data.beir import load_beir

    train = load_beir(data_dir, split="train")
    train_pairs = {(q, d) for q in sorted(train.qrels) for d, s in train.qrels[q].items() if s > 0}
    node_pairs: set[tuple[str, str]] = set()
    for path in sorted((demo / "members").glob("node-*/interactions.jsonl")):
        for line in path.read_text().splitlines():
            row = json.loads(line)
            node_pairs.add((str(row["query_id"]), str(row["doc_id"])))
    missing = len(train_pairs - node_pairs)
    doc_row = {doc_id: row for row, doc_id in enumerate(test.corpus_ids)}
    query_row = {qid: row for row, qid in enumerate(vectors.query_ids)}
    test_pairs = [
        (query_row[q], doc_row[d])
        for q in sorted(test.qrels)
        for d, s in sorted(test.qrels[q].items())
        if s > 0 and d in doc_row and q in query_row
    ]
    queries = np.concatenate(
        [pool.query_vectors, vectors.queries[[q for q, _ in test_pairs]]]
    ).astype(np.float32)
    positives = np.concatenate(
        [pool.positive_index, np.array([d for _, d in test_pairs], dtype=np.int64)]
    )
    labels = np.r_[np.ones(len(pool), dtype=bool), np.zeros(len(test_pairs), dtype=bool)]
    data = InteractionSet(queries, positives.astype(np.int64), pool.doc_vectors)
    return data, labels, missing


def _demo_reports(
    demo: Path, data_dir: Path, pool: InteractionSet, vectors: RetrievalVectors, test: BeirDataset
) -> list[AttackReport]:
    started = time.perf_counter()
    adapter = Adapter.load(demo / "runs" / "dp-eps8" / "global_adapter")
    data, labels, missing = _demo_pairs(demo, data_dir, pool, vectors, test)
    target = record_statistics(adapter, data, temperature=TEMPERATURE)
    base = record_statistics(None, data, temperature=TEMPERATURE)
    seconds = time.perf_counter() - started
    details = {
        "member_records": "demo nodes' train pairs",
        "non_member_records": "SciFact test pairs (different queries: biased)",
        "train_pairs_not_in_nodes": missing,
        "epsilon": adapter.metadata.get("per_node_epsilon"),
    }
    name = "federated DP demo adapter (eps 8)"
    reports = [
        attack_report(
            threshold_scores(target, signal),
            labels,
            variant=f"{signal} threshold",
            target=name,
            threat_model=THREAT_THRESHOLD,
            seconds=seconds,
            details=details,
        )
        for signal in ("loss", "similarity", "rank")
    ]
    reports.append(
        attack_report(
            calibrated_loss_scores(target, base),
            labels,
            variant="calibrated loss",
            target=name,
            threat_model=THREAT_CALIBRATED,
            seconds=seconds,
            details=details,
        )
    )
    reports.append(
        attack_report(
            threshold_scores(base, "loss"),
            labels,
            variant="loss threshold",
            target="base encoder, no adapter (bias baseline of the demo game)",
            threat_model=THREAT_THRESHOLD,
            seconds=seconds,
            details={**details, "panel": name},
        )
    )
    return reports


def _plot(reports: list[AttackReport], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(str(r.details.get("panel", r.target)) for r in reports))
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 5), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        lowest = 1.0
        for r in (r for r in reports if str(r.details.get("panel", r.target)) == panel):
            fpr, tpr = np.asarray(r.details["roc_fpr"]), np.asarray(r.details["roc_tpr"])
            shown = fpr > 0  # log axes: FPR 0 cannot be drawn; TPR@0 FPR is in the JSON
            lowest = min(lowest, float(r.metrics["lowest_fpr"]))
            prefix = "" if r.target == panel else "base encoder: "
            label = f"{prefix}{r.details['variant']} (AUC {r.metrics['auc']:.3f})"
            ax.step(fpr[shown], np.maximum(tpr[shown], 1e-5), where="post", label=label)
        ax.plot([1e-5, 1], [1e-5, 1], "k:", linewidth=0.8, label="chance")
        ax.axvline(lowest, color="grey", linewidth=0.6, linestyle="--")
        ax.set(xscale="log", yscale="log", xlim=(lowest / 2, 1), ylim=(1e-4, 1.05))
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=panel)
        ax.title.set_fontsize(9)
        ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _line(report: AttackReport) -> dict[str, Any]:
    details = {k: v for k, v in report.details.items() if not k.startswith("roc_")}
    return {"target": report.target, **details, **report.metrics, "seconds": report.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--demo", type=Path, default=DEFAULT_DEMO, help="demo output folder")
    parser.add_argument("--shadows", type=int, default=16, help="shadow models per recipe (K)")
    parser.add_argument("--targets", type=int, default=4, help="target models per recipe (T)")
    parser.add_argument("--epsilon", type=float, nargs="+", default=[8.0])
    parser.add_argument(
        "--plan",
        action="store_true",
        help="also the DP recipe at the default policy's planned epsilon (fedembed policy plan)",
    )
    parser.add_argument(
        "--adapter-kind",
        default="residual_linear",
        choices=["residual_linear", "shift"],
        help="adapter shape of every recipe",
    )
    parser.add_argument("--delta", type=float, default=1e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--recipes", nargs="+", default=["overfit", "dp"])
    parser.add_argument(
        "--dp-batch",
        type=int,
        default=None,
        help="DP recipe with Poisson-sampled batches of this size (default: full batch)",
    )
    parser.add_argument(
        "--dp-epochs", type=int, default=DP_EPOCHS, help="DP steps (full batch) or epochs"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/membership_roc.png"))
    args = parser.parse_args()
    if args.shadows < 4 or args.targets < 1:
        parser.error("--shadows must be >= 4 (two IN and two OUT per record), --targets >= 1")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pool, vectors, test = load_interactions(args.data, args.cache)
    base = record_statistics(None, pool, temperature=TEMPERATURE)
    reports: list[AttackReport] = []
    # None: the overfit non-DP recipe; a number: the DP recipe at that epsilon.
    epsilons = list(args.epsilon)
    if args.plan:
        from policies import load_default_policy, plan_privacy

        epsilons.append(plan_privacy(load_default_policy().policy).epsilon)
    plan: list[float | None] = [
        eps for recipe in args.recipes for eps in (epsilons if recipe == "dp" else [None])
    ]
    kind = args.adapter_kind
    for epsilon in plan:
        t0 = time.perf_counter()
        if epsilon is None:
            name, train, sigma = f"overfit non-DP {kind} adapter", overfit_trainer(kind=kind), None
        else:
            train, sigma = dp_trainer(
                target_epsilon=epsilon,
                target_delta=args.delta,
                steps=args.dp_epochs,
                batch_size=args.dp_batch,
                kind=kind,
            )
            name = (
                f"DP-SGD {kind} adapter (eps {epsilon:.4g}, delta {args.delta:g}, "
                f"sigma {sigma:.2f})"
                if sigma is not None  # sampled batches: no single sigma, no exact GDP bound
                else f"DP-SGD {kind} adapter (eps {epsilon:g}, delta {args.delta:g}, Poisson batch "
                f"{args.dp_batch}, {args.dp_epochs} epochs)"
            )
        first: list[Adapter] = []
        game = play_game(
            name,
            pool,
            base,
            train,
            shadows=args.shadows,
            targets=args.targets,
            seed=args.seed,
            epsilon=epsilon,
            noise_multiplier=sigma,
            steps=args.dp_epochs,
            keep_first=first,
        )
        ndcg = float(score_retrieval(vectors, test, adapter=first[0])["ndcg@10"])
        extra = {"ndcg@10_model0": ndcg}
        # The benchmark's release is the recipe itself: its own GDP bound (None when sampled).
        bound = gdp_auc_bound(sigma, steps=args.dp_epochs)
        for report in game_reports(game, time.perf_counter() - t0, bound=bound, extra=extra):
            reports.append(report)
            print(json.dumps(_line(report)), flush=True)
    if (args.demo / "runs" / "dp-eps8" / "global_adapter").is_dir():
        for report in _demo_reports(args.demo, args.data, pool, vectors, test):
            reports.append(report)
            print(json.dumps(_line(report)), flush=True)
    _plot(reports, args.out)
    print(json.dumps({"png": str(args.out), "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
