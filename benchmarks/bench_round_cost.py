"""Where a deployment-engine round's seconds go: a 3-node CKKS federation on loopback.

A real TLS SuperLink and three authenticated SuperNodes (``fedembed.loopback_consortium``,
as ``fedembed demo`` and the deployment tests start them), CKKS aggregation after the
members' key ceremony, the distributed-DP recipe of ``fedembed demo`` (one full-batch
DP-SGD step per node and round, 3 noise shares, Adam on the coordinator), a SciFact
subset split non-IID with the node embedding caches filled beforehand, ``--rounds``
rounds, no central evaluation (``--eval`` adds it).

Method: each SuperNode runs with ``FEDEMBED_ROUND_TIMINGS`` set, so every ClientApp
process appends the wall-clock times of its phases (``client_node.round_timing``).
Rounds are delimited on the nodes: round r's period is from the start of the first
ClientApp process of round r's ``train`` message to that of round r+1 (the last
round has no successor and is left out). Local training is the slowest node's
``train_adapter`` call in the round; the overhead is the period minus it. Round 1
pays one-off costs and is left out: medians over rounds 2..R-1. Per message kind
(train, endorse where the round's set was not announced, decrypt) the medians of the
phases in the ClientApp process, and the gaps between the messages of a round
(Flower's polling, the SuperLink, the coordinator's aggregation) are reported too.

Variants (``--variants``; interleaved with ``--repeats``): ``fedembed`` starts the
SuperNodes as ``fedembed node start`` does; ``flower-defaults`` starts them with
Flower's own SuperNode defaults (``deployment.flower_processes.FLOWER_DEFAULTS_ENV``):
telemetry on, 1 s SuperExec poll, 3 s SuperNode poll.

Bytecode (``--bytecode``): ``cached`` lets every process read and write Python's
bytecode cache, as Python does by default, in a private ``PYTHONPYCACHEPREFIX``; ``off``
sets ``PYTHONDONTWRITEBYTECODE=1``, so every ClientApp process compiles the fedembed
modules it imports (this development machine sets it for every process).

    .venv/bin/python benchmarks/bench_round_cost.py [--rounds 5] [--repeats 1]
        [--variants fedembed,flower-defaults] [--bytecode cached,off] [--eval]

Prints one JSON object. Nothing is written into the repository.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

SUBSET = "scifact-subset"
NODES = ("node-0", "node-1", "node-2")
OTHER_DOCS = 150
VARIANTS = ("fedembed", "flower-defaults")
PHASES = (
    ("process_start", "app_import_start", "process start, Flower imports, FAB install"),
    ("app_import_start", "app_imported", "ClientApp module imports"),
    ("app_imported", "call_start", "ClientApp load to first mod"),
    ("call_start", "data_loaded", "node data, privacy checks, ledger"),
    ("data_loaded", "vectors_ready", "encoder + embedding cache"),
    ("vectors_ready", "train_start", "adapter set-up"),
    ("train_start", "train_end", "local training (train_adapter)"),
    ("train_end", "call_end", "clip, encrypt, sign"),
    ("call_start", "call_end", "in the ClientApp (mods and handler)"),
    ("call_end", "exit", "reply push, process exit"),
)


def write_subset(source: Path, target: Path, *, train_queries: int) -> None:
    """SciFact reduced to its test split, the first ``train_queries`` train queries, the
    documents either cites and ``OTHER_DOCS`` further documents."""
    qrels: dict[str, list[list[str]]] = {}
    for split in ("train", "test"):
        lines = (source / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
        rows = [line.split("\t") for line in lines if line.strip()]
        if split == "train":
            kept = set(list(dict.fromkeys(row[0] for row in rows))[:train_queries])
            rows = [row for row in rows if row[0] in kept]
        qrels[split] = rows
    cited = {row[1] for rows in qrels.values() for row in rows}
    documents: list[str] = []
    others = 0
    for line in (source / "corpus.jsonl").read_text().splitlines():
        if json.loads(line)["_id"] in cited:
            documents.append(line)
        elif others < OTHER_DOCS:
            documents.append(line)
            others += 1
    (target / "qrels").mkdir(parents=True)
    (target / "corpus.jsonl").write_text("\n".join(documents) + "\n")
    shutil.copyfile(source / "queries.jsonl", target / "queries.jsonl")
    for split, rows in qrels.items():
        body = "\n".join("\t".join(row) for row in rows)
        (target / "qrels" / f"{split}.tsv").write_text(f"query-id\tcorpus-id\tscore\n{body}\n")


def prepare(work: Path, shared_data: Path, train_queries: int) -> None:
    """Subset, non-IID member folders with filled embedding caches, kits, CKKS ceremony."""
    from client_node.node_data import load_node_data
    from embedding_core.cache import EmbeddingCache
    from embedding_core.data import load_beir
    from embedding_core.data.federated_split import split_non_iid, write_shards
    from embedding_core.encoder import Encoder
    from kits.ckks_ceremony import run_ckks_ceremony
    from kits.provisioning import provision

    write_subset(shared_data / "scifact", work / "data" / SUBSET, train_queries=train_queries)
    train = load_beir(work / "data" / SUBSET, split="train", name=SUBSET)
    encoder = Encoder.load()
    doc_vectors = EmbeddingCache().get_or_encode(encoder, train.corpus_texts)
    shards = split_non_iid(train, doc_vectors, num_nodes=len(NODES))
    for folder in write_shards(shards, work / "members"):
        load_node_data(folder).vectors(encoder)  # the node's cache, filled
    provision(work / "kits", node_ids=[s.node_id for s in shards])
    run_ckks_ceremony(work / "kits", key_holder=shards[0].node_id)


def run_variant(work: Path, variant: str, rounds: int, tag: str, evaluate: bool) -> dict[str, Any]:
    """One federation; returns the nodes' timing records and the run's wall time."""
    from deployment.flower_processes import FLOWER_DEFAULTS_ENV
    from fedembed.federated_demo import Recipe
    from fedembed.loopback_consortium import LoopbackConsortium
    from federation.node_privacy import NodePrivacy

    run_dir = work / f"run-{variant}-{tag}"
    shutil.copytree(work / "members", run_dir / "members")  # fresh ledgers, filled caches
    timings = run_dir / "timings.jsonl"
    env = {
        "FEDEMBED_CACHE_DIR": os.environ["FEDEMBED_CACHE_DIR"],
        "FEDEMBED_DATA_DIR": str(work / "data"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "FEDEMBED_ROUND_TIMINGS": str(timings),
    }
    if variant == "flower-defaults":
        env.update(FLOWER_DEFAULTS_ENV)
    recipe = Recipe(distributed_rounds=rounds)
    config = recipe.distributed_run_config(epsilon=8.0, data_dir=work / "data", tag=f"b{tag}")
    config.update(
        {
            "eval-dataset": SUBSET if evaluate else "none",
            "run-tag": f"bench-{variant}-{tag}",
            "min-nodes": len(NODES),
        }
    )
    with LoopbackConsortium(kits=work / "kits", work=run_dir / "flower", env=env) as loopback:
        loopback.start(list(NODES))
        for name in NODES:
            loopback.start_node(
                name,
                data_dir=run_dir / "members" / name,
                node_privacy=NodePrivacy(max_epsilon=1000.0, max_noise_shares=3),
            )
        started = time.time()
        summary = loopback.run(config, out_dir=run_dir / "out", timeout=3600)
        finished = time.time()
    records = [json.loads(line) for line in timings.read_text().splitlines() if line.strip()]
    return {
        "variant": variant,
        "started": started,
        "finished": finished,
        "records": records,
        "refusals": summary.get("refusals", []),
    }


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def analyse(raw: dict[str, Any]) -> dict[str, Any]:
    """Rounds, overheads and per-phase medians of one run."""
    by_round: dict[int, list[dict[str, Any]]] = {}
    train_seen: dict[str, int] = {}
    records = sorted(raw["records"], key=lambda r: r.get("process_start", r.get("call_start", 0)))
    current: dict[str, int] = {}
    for record in records:  # a node's train message opens its next round
        node = record.get("node", "?")
        if record.get("kind") == "train":
            train_seen[node] = train_seen.get(node, 0) + 1
            current[node] = train_seen[node]
        by_round.setdefault(current.get(node, 0), []).append(record)
    rounds = sorted(r for r in by_round if r > 0)
    starts = {
        r: min(x["process_start"] for x in by_round[r] if x.get("kind") == "train") for r in rounds
    }
    periods, trainings, overheads = {}, {}, {}
    for r, nxt in itertools.pairwise(rounds):
        periods[r] = starts[nxt] - starts[r]
        trainings[r] = max(
            x["train_end"] - x["train_start"] for x in by_round[r] if "train_end" in x
        )
        overheads[r] = periods[r] - trainings[r]
    steady = [r for r in periods if r >= 2] or list(periods)
    phases: dict[str, dict[str, float | None]] = {}
    for kind in ("train", "endorse", "decrypt"):
        rows = [x for r in steady for x in by_round[r] if x.get("kind") == kind]
        phases[kind] = {
            f"{a}->{b} ({what})": _median([x[b] - x[a] for x in rows if a in x and b in x])
            for a, b, what in PHASES
            if any(a in x and b in x for x in rows)
        }
        phases[kind]["process total"] = _median(
            [x["exit"] - x["process_start"] for x in rows if "process_start" in x]
        )
    gaps: dict[str, list[float]] = {}
    for r in steady:
        kinds = {k: [x for x in by_round[r] if x.get("kind") == k] for k in ("train", "endorse")}
        kinds["decrypt"] = [x for x in by_round[r] if x.get("kind") == "decrypt"]
        # The round's messages in order: train, endorse (where its set was not
        # announced), decrypt.
        present = [k for k in ("train", "endorse", "decrypt") if kinds[k]]
        for a, b in itertools.pairwise(present):
            gap = min(x["process_start"] for x in kinds[b]) - max(x["exit"] for x in kinds[a])
            gaps.setdefault(f"last {a} exit -> first {b} start", []).append(gap)
        if kinds["decrypt"] and r + 1 in starts:
            gaps.setdefault("last decrypt exit -> next train start", []).append(
                starts[r + 1] - max(x["exit"] for x in kinds["decrypt"])
            )
    return {
        "round_periods": {r: round(v, 2) for r, v in periods.items()},
        "local_training": {r: round(v, 2) for r, v in trainings.items()},
        "overhead": {r: round(v, 2) for r, v in overheads.items()},
        "median_overhead_seconds": _median([overheads[r] for r in steady]),
        "median_period_seconds": _median([periods[r] for r in steady]),
        "median_phases_seconds": phases,
        "median_gaps_seconds": {k: _median(v) for k, v in gaps.items()},
        "processes_per_round": _median([float(len(by_round[r])) for r in steady]),
        "run_seconds": round(raw["finished"] - raw["started"], 1),
        "refusals": raw["refusals"],
    }


def use_bytecode(mode: str, prefix: Path) -> None:
    """Set how the processes this benchmark starts cache bytecode (they inherit the
    environment): ``cached`` as Python does by default, in a private folder (some
    machines set PYTHONDONTWRITEBYTECODE=1 for every process); ``off`` not at all."""
    if mode == "cached":
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        os.environ["PYTHONPYCACHEPREFIX"] = str(prefix)
    elif mode == "off":
        os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
        os.environ.pop("PYTHONPYCACHEPREFIX", None)
    else:
        raise SystemExit(f"--bytecode: {mode!r} is neither cached nor off")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--train-queries", type=int, default=240)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--repeats", type=int, default=1, help="runs per variant, interleaved")
    parser.add_argument("--eval", action="store_true", help="central evaluation every round")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("FEDEMBED_DATA_DIR", REPO_ROOT.parent / "shared" / "data")),
    )
    parser.add_argument(
        "--bytecode",
        default="cached",
        help="comma-separated: cached (Python's default: modules compiled once, into a "
        "private PYTHONPYCACHEPREFIX) and/or off (PYTHONDONTWRITEBYTECODE=1: every "
        "process compiles what it imports)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    if args.rounds < 3:
        parser.error("--rounds must be at least 3 (round 1 and the last round are left out)")

    work = Path(tempfile.mkdtemp(prefix="fedembed-bench-round-cost-"))
    os.environ.setdefault("FEDEMBED_CACHE_DIR", str(work / "cache"))
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        started = time.perf_counter()
        prepare(work, args.data_dir, args.train_queries)
        prepare_s = time.perf_counter() - started
        load_before = os.getloadavg()
        runs: dict[str, list[dict[str, Any]]] = {}
        variants = args.variants.split(",")
        bytecode = args.bytecode.split(",")
        for repeat, variant, cache in itertools.product(range(args.repeats), variants, bytecode):
            use_bytecode(cache, work / "pycache")
            key = variant if cache == "cached" else f"{variant}@bytecode-{cache}"
            raw = run_variant(work, variant, args.rounds, f"{repeat}-{cache}", args.eval)
            runs.setdefault(key, []).append(analyse(raw))
        report = {
            "benchmark": "seconds of a deployment-engine round beyond local training, "
            "3 SuperNodes + TLS SuperLink on loopback, CKKS, distributed DP",
            "method": __doc__.split("Method: ", 1)[1].split("\n\n")[0].replace("\n", " "),
            "rounds": args.rounds,
            "repeats": args.repeats,
            "evaluation": args.eval,
            "bytecode": bytecode,
            "data": f"{SUBSET}: {args.train_queries} train queries split non-IID, caches filled",
            "variants": {
                v: {
                    "median_overhead_seconds": _median(
                        [x for run in rs for r, x in run["overhead"].items() if r >= 2]
                    ),
                    "runs": rs,
                }
                for v, rs in runs.items()
            },
            "prepare_seconds": round(prepare_s, 1),
            "machine": {
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
                "loadavg_before": [round(x, 2) for x in load_before],
                "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            },
        }
        print(json.dumps(report, indent=2))
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
