"""Inversion and attribute attacks against raw, noised, DCPE-encrypted and DP-adapted vectors.

Attacker: knows the encoder (all-MiniLM-L6-v2, black-box queries) and holds public
auxiliary text, never the private targets. Two auxiliary sets are compared on raw vectors:
``stsb`` (STS-B train+dev+test sentences) and ``domain`` (STS-B plus BANKING77 train: the
*public training split* of a published dataset, disjoint from the test queries, standing
for public in-domain text); every protection is attacked with the ``domain`` attacker (the
stronger one). SciFact train claims are deliberately NOT used: a third of the test claims
have their negated twin among them ("X increases Y" / "X decreases Y"), which would turn
nearest-neighbour lookup into near-copying of the private claims. Private targets:
BANKING77 test queries and SciFact test claims.

Attacks (``attacks`` package): bag-of-words MLP inversion, nearest-neighbour inversion,
attribute inference (intent of BANKING77 test queries, probe trained on BANKING77 train;
owning node of SciFact documents in the demo's 3-node split, probe trained on a random
half, tested on the other half). Protections: raw; Gaussian noise (renormalised) for a
sigma sweep, attacked both statically (raw-trained attacker) and adaptively (attacker
trained on public vectors noised the same way); DCPE (Scale-And-Perturb) per beta,
ciphertext-only (raw-trained attacker on ``c/||c||``) and known-plaintext (linear map
fitted on N public (plaintext, ciphertext) pairs); the released DP adapter (query side),
static and adaptive (attacker trains on adapter outputs of public text). Utility: SciFact
test nDCG@10 with the protection applied as deployed (noise on documents and queries;
DCPE on both, exact L2 search; adapter on queries).

Prints JSON lines; writes ``results.jsonl``, ``table.md`` and ``privacy_utility.png`` to
``--out``.

    nice -n 19 .venv/bin/python benchmarks/bench_inversion.py --out /tmp/inversion-out
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from numpy.typing import NDArray

from attacks import bow_inversion, nearest_neighbour_inversion
from attacks.attribute_inference import AttributeProbe, attribute_report
from attacks.base import AttackReport
from attacks.bow_inversion import BowConfig, BowInverter
from attacks.known_plaintext_map import LinearMapAttacker
from attacks.nearest_neighbour_inversion import NearestNeighbourInverter
from attacks.protections import DcpeProtection, GaussianNoise
from attacks.text_metrics import Inverter, inversion_report
from embedding_core import EmbeddingCache, Encoder
from embedding_core.adapter import Adapter
from embedding_core.data import BeirDataset, load_beir, load_stsb, resolve_dataset_dir
from embedding_core.evaluation.metrics import mean_metrics
from embedding_core.evaluation.search import exact_top_k

DEFAULT_DATA = Path("/work/shared/data")
DEFAULT_CACHE = Path("/work/fedembed-cache")
DEFAULT_ADAPTER = Path("/work/demo-run2/out/runs/dp-eps8/global_adapter")
DEFAULT_MEMBERS = Path("/work/demo-run2/out/members")
DEPTH = 100
NDCG = "ndcg@10"
Matrix = NDArray[np.float32]
Transform = Callable[[np.ndarray], np.ndarray]


def emit(record: dict[str, Any]) -> None:
    print(json.dumps(record), flush=True)


def stsb_sentences(data: Path) -> list[str]:
    seen: dict[str, None] = {}
    for split in ("train", "dev", "test"):
        for pair in load_stsb(data / "stsb", split=split):
            for sentence in (pair.sentence1, pair.sentence2):
                seen.setdefault(sentence.strip(), None)
    return list(seen)


def banking(data: Path, split: str) -> tuple[list[str], list[str]]:
    with open(data / "banking77" / f"{split}.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def claims(dataset: BeirDataset) -> list[str]:
    return [dataset.queries[q] for q in dataset.qrels if q in dataset.queries]


def ndcg_of(queries: np.ndarray, documents: np.ndarray, ds: BeirDataset, *, l2: bool) -> float:
    q, d = queries.astype(np.float64), documents.astype(np.float64)
    if l2:  # rank by -||q - d||^2 = 2 q.d - ||d||^2 (+ const per query)
        scores = 2.0 * (q @ d.T) - (d * d).sum(axis=1)[None, :]
        top = np.argsort(-scores, axis=1, kind="stable")[:, :DEPTH]
    else:
        top, _ = exact_top_k(q.astype(np.float32), d.astype(np.float32), DEPTH)
    ids = claims_ids(ds)
    rankings = {qid: [ds.corpus_ids[j] for j in row] for qid, row in zip(ids, top, strict=True)}
    return mean_metrics(rankings, ds.qrels)[NDCG]


def claims_ids(dataset: BeirDataset) -> list[str]:
    return [q for q in dataset.qrels if q in dataset.queries]


class Bench:
    """Shared state: data, vectors, raw-trained attackers, and the result rows."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rows: list[dict[str, Any]] = []
        data = args.data_dir
        encoder = Encoder.load()
        cache = EmbeddingCache(args.cache)

        def embed(texts: Sequence[str]) -> Matrix:
            return cache.get_or_encode(encoder, list(texts))

        root = resolve_dataset_dir(data, "scifact", marker="corpus.jsonl")
        self.scifact = load_beir(root, split="test")
        stsb = stsb_sentences(data)
        self.bank_train, self.bank_train_labels = banking(data, "train")
        self.bank_test, self.bank_test_labels = banking(data, "test")
        self.claims = claims(self.scifact)
        started = time.perf_counter()
        self.v_stsb = embed(stsb)
        self.v_bank_train = embed(self.bank_train)
        self.v_bank_test = embed(self.bank_test)
        self.v_claims = embed(self.claims)
        self.v_docs = embed(self.scifact.corpus_texts)
        emit({"event": "embedded", "seconds": round(time.perf_counter() - started, 1)})
        self.public_stsb = stsb
        self.public = stsb + self.bank_train
        self.v_public = np.vstack([self.v_stsb, self.v_bank_train])
        emit(
            {
                "event": "data",
                "stsb": len(stsb),
                "banking77_train": len(self.bank_train),
                "banking77_test": len(self.bank_test),
                "scifact_test_claims": len(self.claims),
                "scifact_docs": len(self.scifact.corpus_ids),
            }
        )
        self.targets = {"banking77-test": self.bank_test, "scifact-claims": self.claims}
        self.node_labels, self.node_index = self._nodes(args.members)
        self.config = BowConfig(
            vocab_size=args.vocab, hidden=args.hidden, epochs=args.epochs, seed=args.seed
        )

    def _nodes(self, members: Path) -> tuple[list[str], NDArray[np.int64]]:
        position = {doc_id: i for i, doc_id in enumerate(self.scifact.corpus_ids)}
        labels, index = [], []
        for folder in sorted(members.glob("node-*")):
            with open(folder / "documents.jsonl", encoding="utf-8") as handle:
                for line in handle:
                    doc_id = str(json.loads(line)["id"])
                    if doc_id in position:
                        labels.append(folder.name)
                        index.append(position[doc_id])
        return labels, np.asarray(index, dtype=np.int64)

    # --- attackers ------------------------------------------------------------------
    def fit_bow(self, texts: Sequence[str], vectors: np.ndarray) -> tuple[BowInverter, float]:
        started = time.perf_counter()
        inverter = BowInverter(self.config).fit(texts, vectors)
        return inverter, time.perf_counter() - started

    def fit_probes(self, public: np.ndarray) -> tuple[AttributeProbe, AttributeProbe]:
        """Intent probe on BANKING77 train; node probe on a random half of the documents."""
        intent = AttributeProbe().fit(public, self.bank_train_labels)
        half = self._node_half()
        node = AttributeProbe().fit(
            self.v_docs[self.node_index[half]], [self.node_labels[i] for i in half]
        )
        return intent, node

    def _node_half(self, test: bool = False) -> NDArray[np.int64]:
        order = np.random.default_rng(self.args.seed).permutation(len(self.node_labels))
        middle = len(order) // 2
        return order[middle:] if test else order[:middle]

    # --- reporting --------------------------------------------------------------------
    def record(self, report: AttackReport, protection: str, variant: str, ndcg: float) -> None:
        row = {
            "event": "attack",
            "protection": protection,
            "variant": variant,
            "scifact_ndcg@10": round(ndcg, 4),
            **asdict(report),
        }
        row["metrics"] = {k: round(v, 4) for k, v in report.metrics.items()}
        row["seconds"] = round(report.seconds, 1)
        self.rows.append(row)
        emit(row)

    def run_inversions(
        self,
        inverters: Sequence[tuple[str, Inverter, float]],
        protect: Transform,
        protection: str,
        variant: str,
        threat: str,
        ndcg: float,
    ) -> None:
        vectors = {"banking77-test": self.v_bank_test, "scifact-claims": self.v_claims}
        for target, texts in self.targets.items():
            seen = protect(vectors[target])
            for name, inverter, fit_seconds in inverters:
                report = inversion_report(
                    name,
                    inverter,
                    texts,
                    seen,
                    target=f"{target} {protection}",
                    threat_model=threat,
                    fit_seconds=fit_seconds,
                )
                self.record(report, protection, variant, ndcg)

    def run_attributes(
        self,
        probes: tuple[AttributeProbe, AttributeProbe],
        protect_queries: Transform,
        protect_docs: Transform,
        protection: str,
        variant: str,
        threat: str,
        ndcg: float,
    ) -> None:
        intent, node = probes
        report = attribute_report(
            intent,
            protect_queries(self.v_bank_test),
            self.bank_test_labels,
            target=f"banking77-test intent {protection}",
            threat_model=threat,
        )
        self.record(report, protection, variant, ndcg)
        test = self._node_half(test=True)
        report = attribute_report(
            node,
            protect_docs(self.v_docs[self.node_index[test]]),
            [self.node_labels[i] for i in test],
            target=f"scifact-docs owning-node {protection}",
            threat_model=threat,
        )
        self.record(report, protection, variant, ndcg)


STATIC = "knows the encoder, holds public auxiliary text ({aux}); trained on raw public vectors"
ADAPTIVE = "as static, but trains on public vectors passed through the same protection"
KPA = "ciphertext-only attacker plus {n} known (plaintext, ciphertext) pairs: linear map back"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--adapter", type=Path, default=DEFAULT_ADAPTER)
    parser.add_argument("--members", type=Path, default=DEFAULT_MEMBERS)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--sigmas", default="0.01,0.02,0.05,0.1,0.2")
    parser.add_argument("--adaptive-sigmas", default="0.05,0.1")
    parser.add_argument("--betas", default="0.5,1.0,1.5,3.0")
    parser.add_argument("--kpa-pairs", default="100,1000")
    parser.add_argument("--vocab", type=int, default=5000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    bench = Bench(args)
    ds = bench.scifact
    bow_name, nn_name = bow_inversion.ATTACK_NAME, nearest_neighbour_inversion.ATTACK_NAME

    # Raw: both auxiliary sets.
    raw_ndcg = ndcg_of(bench.v_claims, bench.v_docs, ds, l2=False)
    bow, t_bow = bench.fit_bow(bench.public, bench.v_public)
    nn = NearestNeighbourInverter().fit(bench.public, bench.v_public)
    inverters: list[tuple[str, Inverter, float]] = [(bow_name, bow, t_bow), (nn_name, nn, 0.0)]
    static = STATIC.format(aux="STS-B + BANKING77 train")
    bench.run_inversions(inverters, np.asarray, "raw", "static", static, raw_ndcg)
    probes = bench.fit_probes(bench.v_bank_train)
    bench.run_attributes(probes, np.asarray, np.asarray, "raw", "static", static, raw_ndcg)

    write_outputs(bench.rows, args.out, raw_ndcg)
    utility: dict[str, float] = {}
    # Gaussian noise (renormalised): static for every sigma, adaptive for some (at the end).
    adaptive_sigmas = {float(s) for s in args.adaptive_sigmas.split(",") if s}
    for sigma in (float(s) for s in args.sigmas.split(",")):
        noise = GaussianNoise(sigma, seed=args.seed + 1)
        label = noise.name
        ndcg = ndcg_of(noise.protect(bench.v_claims), noise.protect(bench.v_docs), ds, l2=False)
        utility[label] = ndcg
        emit({"event": "utility", "protection": label, NDCG: round(ndcg, 4)})
        bench.run_inversions(inverters, noise.protect, label, "static", static, ndcg)
        bench.run_attributes(probes, noise.protect, noise.protect, label, "static", static, ndcg)
        write_outputs(bench.rows, args.out, raw_ndcg)

    # DCPE: ciphertext-only and known-plaintext.
    for beta in (float(b) for b in args.betas.split(",")):
        dcpe = DcpeProtection(beta)
        label = dcpe.name
        ndcg = ndcg_of(dcpe.protect(bench.v_claims), dcpe.protect(bench.v_docs), ds, l2=True)
        emit({"event": "utility", "protection": label, NDCG: round(ndcg, 4)})
        bench.run_inversions(inverters, dcpe.protect, label, "ciphertext-only", static, ndcg)
        bench.run_attributes(
            probes, dcpe.protect, dcpe.protect, label, "ciphertext-only", static, ndcg
        )
        for pairs in (int(n) for n in args.kpa_pairs.split(",")):
            known = np.random.default_rng(args.seed + pairs).choice(
                len(bench.v_public), size=pairs, replace=False
            )
            plain = bench.v_public[known]
            attacker = LinearMapAttacker().fit(dcpe.protect(plain), plain)

            def recover(
                v: np.ndarray, a: LinearMapAttacker = attacker, p: DcpeProtection = dcpe
            ) -> np.ndarray:
                return a.recover(p.protect(v))

            variant = f"known-plaintext n={pairs}"
            threat = KPA.format(n=pairs)
            bench.run_inversions(inverters, recover, label, variant, threat, ndcg)
            bench.run_attributes(probes, recover, recover, label, variant, threat, ndcg)

    # Released DP adapter (query side): static and adaptive.
    adapter = Adapter.load(args.adapter)
    label = "dp adapter eps=8"
    ndcg = ndcg_of(adapter.transform(bench.v_claims), bench.v_docs, ds, l2=False)
    emit({"event": "utility", "protection": label, NDCG: round(ndcg, 4)})
    bench.run_inversions(inverters, adapter.transform, label, "static", static, ndcg)
    bench.run_attributes(probes, adapter.transform, np.asarray, label, "static", static, ndcg)
    write_outputs(bench.rows, args.out, raw_ndcg)
    adapted_public = adapter.transform(bench.v_public)
    adaptive_bow, t_adaptive = bench.fit_bow(bench.public, adapted_public)
    adaptive_nn = NearestNeighbourInverter().fit(bench.public, adapted_public)
    bench.run_inversions(
        [(bow_name, adaptive_bow, t_adaptive), (nn_name, adaptive_nn, 0.0)],
        adapter.transform,
        label,
        "adaptive",
        ADAPTIVE,
        ndcg,
    )
    intent = AttributeProbe().fit(adapter.transform(bench.v_bank_train), bench.bank_train_labels)
    bench.run_attributes(
        (intent, probes[1]), adapter.transform, np.asarray, label, "adaptive", ADAPTIVE, ndcg
    )

    # Slower attackers last (each retrains the inverter): STS-B-only, adaptive noise.
    nn_stsb = NearestNeighbourInverter().fit(bench.public_stsb, bench.v_stsb)
    bow_stsb, t_stsb = bench.fit_bow(bench.public_stsb, bench.v_stsb)
    bench.run_inversions(
        [(bow_name, bow_stsb, t_stsb), (nn_name, nn_stsb, 0.0)],
        np.asarray,
        "raw",
        "static aux=stsb",
        STATIC.format(aux="STS-B"),
        raw_ndcg,
    )
    write_outputs(bench.rows, args.out, raw_ndcg)
    for sigma in (float(s) for s in args.sigmas.split(",")):
        noise = GaussianNoise(sigma, seed=args.seed + 1)
        label = noise.name
        ndcg = utility[label]
        if sigma in adaptive_sigmas:
            own = GaussianNoise(sigma, seed=args.seed + 2)  # the attacker's own noise draws
            noised_public = own.protect(bench.v_public)
            adaptive_bow, t_adaptive = bench.fit_bow(bench.public, noised_public)
            adaptive_nn = NearestNeighbourInverter().fit(bench.public, noised_public)
            bench.run_inversions(
                [(bow_name, adaptive_bow, t_adaptive), (nn_name, adaptive_nn, 0.0)],
                noise.protect,
                label,
                "adaptive",
                ADAPTIVE,
                ndcg,
            )

    write_outputs(bench.rows, args.out, raw_ndcg)
    emit({"event": "done", "seconds": round(time.perf_counter() - started, 1)})


def write_outputs(rows: list[dict[str, Any]], out: Path, raw_ndcg: float) -> None:
    """results.jsonl, table.md and the privacy-utility PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(out / "results.jsonl", "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
    header = (
        "| protection | variant | attack | target | F1 | BLEU | numbers | names | "
        "accuracy (majority) | SciFact nDCG@10 |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for row in rows:
        m = row["metrics"]
        target = row["target"].split(" ")[0]
        if row["attack"] == "attribute_inference":
            cells = ["", "", "", "", f"{m['accuracy']:.3f} ({m['majority_baseline']:.3f})"]
            target = " ".join(row["target"].split(" ")[:2])
        else:
            cells = [
                f"{m['f1']:.3f}",
                f"{m['bleu']:.3f}",
                f"{m['number_recovery']:.2f}",
                f"{m['name_recovery']:.2f}",
                "",
            ]
        lines.append(
            f"| {row['protection']} | {row['variant']} | {row['attack']} | {target} | "
            + " | ".join(cells)
            + f" | {row['scifact_ndcg@10']:.4f} |"
        )
    (out / "table.md").write_text(header + "\n".join(lines) + "\n", encoding="utf-8")

    # Strongest inversion F1 per protection and target (over attacks and variants).
    best: dict[tuple[str, str], tuple[float, float]] = {}
    for row in rows:
        if row["attack"] == "attribute_inference" or "aux=stsb" in row["variant"]:
            continue
        key = (row["protection"], row["target"].split(" ")[0])
        f1 = row["metrics"]["f1"]
        if key not in best or f1 > best[key][0]:
            best[key] = (f1, row["scifact_ndcg@10"])
    figure, axis = plt.subplots(figsize=(8, 5.5))
    for target, marker in (("banking77-test", "o"), ("scifact-claims", "s")):
        points = [(k[0], v) for k, v in best.items() if k[1] == target]
        axis.scatter(
            [v[1] for _, v in points], [v[0] for _, v in points], marker=marker, label=target
        )
        for name, (f1, ndcg) in points:
            axis.annotate(name, (ndcg, f1), fontsize=6, xytext=(3, 3), textcoords="offset points")
    axis.axvline(raw_ndcg - 0.02, color="grey", linestyle="--", label="raw nDCG@10 - 2 points")
    axis.axhline(0.1, color="red", linestyle=":", label="F1 = 0.1")
    axis.set_xlabel("SciFact test nDCG@10 (utility)")
    axis.set_ylabel("strongest inversion: content-word F1 (privacy loss)")
    axis.set_title("Privacy-utility: strongest inversion attack per protection")
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(out / "privacy_utility.png", dpi=150)
    plt.close(figure)


if __name__ == "__main__":
    main()
