"""Cost of one federated round for each aggregation mode, on Flower's simulation engine.

Three member nodes (a SciFact subset, split non-IID, written to a temporary folder),
the same recipe and seeds for each mode. Two recipes (``--recipe``):

- ``long`` (the default): local DP-SGD, one epoch of batches of 32 with clip norms, so
  local training dominates a round;
- ``distributed-dp``: the distributed-DP recipe of ``fedembed demo``
  (``fedembed.federated_demo.Recipe.distributed_run_config``): one full-batch DP-SGD step
  a round (learning rate 1, server Adam 3e-3), so secure aggregation dominates. CKKS
  runs it with ``dp-noise-shares = 3`` (each node adds a third of the noise); plaintext
  and SecAgg+ cannot split the noise (``dp-noise-shares <= 1``), so they run the same
  one full-batch step with ``dp-noise-shares = 1`` (the same local work), SecAgg+
  without server Adam (it allows none).

The modes:

- ``plaintext``: FedAvg with ``allow_insecure_plaintext=True`` (the baseline);
- ``ckks``: ``CkksFedAvg`` with kits from ``kits.provisioning.provision``;
- ``secaggplus``: Flower's SecAgg+ workflow (``coordinator.secaggplus_app``).

Method (also in the JSON): each mode runs in its own process. The server side calls the
central evaluator once before round 1 and once after every round, so the timestamps of
those calls delimit the rounds exactly: a round's seconds are from the end of the
previous evaluation to the start of the next one (send the model, local DP-SGD on every
node, secure aggregation, update; central evaluation excluded, identical in all modes).
Round 1 also pays each virtual node's one-off start (worker process, encoder load, data
loading) and is reported but left out of the median; the median is over rounds 2..R.
Start-up (Ray, evaluator, initial evaluation) is reported separately.

    .venv/bin/python benchmarks/bench_round.py [--recipe long|distributed-dp] [--rounds 4]
        [--repeats 2] [--train-queries 240]

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
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from federation.node_privacy import NodePrivacy

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

MODES = ("plaintext", "ckks", "secaggplus")
SUBSET = "scifact-subset"
NODES = 3
OTHER_DOCS = 150
RECIPE: dict[str, Any] = {
    "dp_enabled": True,
    "target_epsilon": 8.0,
    "target_delta": 1e-5,
    "max_grad_norm": 1.0,
    "update_clip_norm": 5.0,
    "batch_size": 32,
    "learning_rate": 0.01,
    "local_epochs": 1,
    "adapter_kind": "residual_linear",
}
"""The ``long`` recipe: local DP-SGD with batches of 32 (local training dominates)."""

DISTRIBUTED_DP_RECIPE: dict[str, Any] = {
    **RECIPE,
    "update_clip_norm": 0.0,  # dp-noise-shares > 1 allows no node-level clipping
    "local_epochs": 1,
    "learning_rate": 1.0,
    "server_learning_rate": 3e-3,
    "dp_noise_shares": NODES,
}
"""The ``distributed-dp`` recipe (``Recipe.distributed_run_config`` of the demo)."""

RECIPES = {"long": RECIPE, "distributed-dp": DISTRIBUTED_DP_RECIPE}


def recipe_for(recipe: str, mode: str) -> dict[str, Any]:
    """The run-config fields of ``recipe`` for ``mode`` (see the module docstring)."""
    fields = dict(RECIPES[recipe])
    if fields.get("dp_noise_shares", 0) and mode != "ckks":
        fields["dp_noise_shares"] = 1  # only CKKS may split the noise among nodes
        if mode == "secaggplus":
            fields["server_learning_rate"] = 0.0  # SecAgg+ allows no server optimiser
    return fields


OPERATOR = NodePrivacy(max_epsilon=1000.0)  # room for every repeat of the benchmark


def write_subset(source: Path, target: Path, *, train_queries: int) -> None:
    """SciFact reduced to the test split, the first ``train_queries`` train queries,
    the documents either cites and ``OTHER_DOCS`` further documents."""
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
    """Subset, non-IID member folders with their embedding caches filled, CKKS kits."""
    from client_node.node_data import load_node_data
    from coordinator.central_evaluation import CentralEvaluator
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
    folders = write_shards(split_non_iid(train, doc_vectors, num_nodes=NODES), work / "members")
    for folder in folders:  # every mode starts with the node caches filled
        load_node_data(folder).vectors(encoder)
    CentralEvaluator(
        data_dir=work / "data", dataset=SUBSET, kind=RECIPE["adapter_kind"], rank=0
    )  # fills the evaluator's cache
    provision(work / "kits", node_ids=[f.name for f in folders])
    run_ckks_ceremony(work / "kits")  # the members' key ceremony


def run_mode(
    mode: str, work: Path, rounds: int, tag: str, recipe: str, dispatch: str
) -> dict[str, Any]:
    """One federation in this process; returns the evaluator's call timestamps."""
    import coordinator.central_evaluation as central_evaluation
    import fedembed.simulation as simulation
    from fedembed.simulation import run_simulated_federation, run_simulated_secaggplus_federation
    from federation.run_config import FederationConfig

    if dispatch == "flower":  # the baseline: Flower's own 0.1 s dispatch and pull ticks
        vars(simulation)["prompt_dispatch"] = lambda **_: False
        vars(simulation)["PromptGrid"] = lambda grid, **_: grid

    calls: list[dict[str, float]] = []
    original = central_evaluation.CentralEvaluator.__call__

    def timed(self: Any, server_round: int, arrays: Any) -> Any:
        started = time.perf_counter()
        result = original(self, server_round, arrays)
        calls.append({"round": server_round, "start": started, "end": time.perf_counter()})
        return result

    central_evaluation.CentralEvaluator.__call__ = timed  # type: ignore[method-assign]
    members = work / f"run-{mode}-{tag}" / "members"
    shutil.copytree(work / "members", members)  # fresh privacy ledgers, filled caches
    config = FederationConfig(
        num_server_rounds=rounds,
        aggregation=mode,
        allow_insecure_plaintext=mode == "plaintext",
        coordinator_kit=str(work / "kits" / "coordinator") if mode == "ckks" else "",
        min_nodes=NODES,
        eval_dataset=SUBSET,
        data_dir=str(work / "data"),
        out_dir=str(work / f"run-{mode}-{tag}" / "out"),
        run_tag=f"bench-{mode}",
        **recipe_for(recipe, mode),
    )
    started = time.perf_counter()
    if mode == "secaggplus":
        summary = run_simulated_secaggplus_federation(
            config, partition_root=members, num_nodes=NODES, node_privacy=OPERATOR
        )
    else:
        summary = run_simulated_federation(
            config,
            partition_root=members,
            num_nodes=NODES,
            node_privacy=OPERATOR,
            kit_root=work / "kits" if mode == "ckks" else None,
        )
    return {
        "started": started,
        "finished": time.perf_counter(),
        "calls": calls,
        "ndcg@10_per_round": summary["ndcg@10_per_round"],
        "refusals": summary["refusals"],
    }


def round_seconds(raw: dict[str, Any]) -> list[float]:
    """Seconds of rounds 1..R of one run, from the evaluation timestamps."""
    calls = sorted(raw["calls"], key=lambda c: c["round"])
    return [round(nxt["start"] - prev["end"], 3) for prev, nxt in itertools.pairwise(calls)]


def analyse(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One mode: median over rounds 2..R of all its runs, and per-run details."""
    per_run = [round_seconds(raw) for raw in runs]
    steady = [s for rounds in per_run for s in (rounds[1:] or rounds)]
    evals = [c["end"] - c["start"] for raw in runs for c in raw["calls"]]
    return {
        "round_seconds": per_run,
        "median_round_seconds": round(statistics.median(steady), 3),
        "startup_seconds": [round(raw["calls"][0]["end"] - raw["started"], 2) for raw in runs],
        "eval_seconds_median": round(statistics.median(evals), 3),
        "total_seconds": [round(raw["finished"] - raw["started"], 2) for raw in runs],
        "ndcg@10_per_round": [raw["ndcg@10_per_round"] for raw in runs],
        "refusals": [r for raw in runs for r in raw["refusals"]],
    }


def run_child(
    args: argparse.Namespace,
    work: Path,
    env: dict[str, str],
    mode: str,
    repeat: int,
    dispatch: str,
) -> dict[str, Any]:
    """One mode's federation in a child process; one retry when it fails to start
    (on a loaded machine Ray's start-up can time out), then the benchmark stops."""
    proc: subprocess.CompletedProcess[str] | None = None
    for attempt in range(2):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                mode,
                "--work",
                str(work),
                "--rounds",
                str(args.rounds),
                "--tag",
                f"{repeat}-{attempt}",
                "--recipe",
                args.recipe,
                "--dispatch",
                dispatch,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
        sys.stderr.write(proc.stderr[-5000:])
        print(f"{mode} run {repeat} failed (exit {proc.returncode})", file=sys.stderr)
    assert proc is not None
    raise SystemExit(f"{mode} run failed twice (exit {proc.returncode})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        default="long",
        help="long: local DP-SGD epochs; distributed-dp: one full-batch step a round",
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--train-queries", type=int, default=240)
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path(os.environ.get("FEDEMBED_DATA_DIR", REPO_ROOT.parent / "shared" / "data")),
    )
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--repeats", type=int, default=1, help="runs per mode, interleaved")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--dispatch",
        default="prompt",
        help="simulation timing, comma-separated: prompt (the product's: "
        "fedembed.simulation_dispatch and PromptGrid) and/or flower (Flower's 0.1 s dispatch "
        "tick and 0.1 s grid pulls, the baseline)",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: one mode
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tag", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = run_mode(args.child, args.work, args.rounds, args.tag, args.recipe, args.dispatch)
        print(json.dumps(result))
        return

    work = Path(tempfile.mkdtemp(prefix="fedembed-bench-round-"))
    env = {
        **os.environ,
        "FEDEMBED_CACHE_DIR": str(work / "cache"),
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(REPO_ROOT),
    }
    os.environ.update({k: env[k] for k in ("FEDEMBED_CACHE_DIR", "HF_HUB_OFFLINE")})
    try:
        started = time.perf_counter()
        prepare(work, args.data_dir, args.train_queries)
        prepare_s = time.perf_counter() - started
        load_before = os.getloadavg()
        runs: dict[str, list[dict[str, Any]]] = {}
        dispatches = args.dispatch.split(",")
        for repeat, mode, dispatch in itertools.product(
            range(args.repeats), args.modes.split(","), dispatches
        ):
            key = mode if dispatch == "prompt" else f"{mode}@{dispatch}"
            runs.setdefault(key, []).append(run_child(args, work, env, mode, repeat, dispatch))
        modes = {mode: analyse(mode_runs) for mode, mode_runs in runs.items()}
        ratios = {}
        for key in modes:
            mode, _, dispatch = key.partition("@")
            base_key = "plaintext" + (f"@{dispatch}" if dispatch else "")
            base = modes.get(base_key, {}).get("median_round_seconds")
            if mode != "plaintext" and base:
                ratios[f"{key}/{base_key}"] = round(modes[key]["median_round_seconds"] / base, 3)
        for key in modes:
            if "@" in key and key.split("@")[0] in modes:
                mode = key.split("@")[0]
                ratios[f"{mode}/{key}"] = round(
                    modes[mode]["median_round_seconds"] / modes[key]["median_round_seconds"], 3
                )
        report = {
            "benchmark": "seconds per federated round, 3 virtual nodes, simulation engine",
            "method": (
                "each mode in its own process; round r = start of the central evaluation "
                "after round r minus end of the evaluation after round r-1 (timestamps "
                "from a wrapper around CentralEvaluator.__call__), i.e. configure + local "
                "DP-SGD on every node + (secure) aggregation + model update, central "
                "evaluation excluded; median over rounds 2..R of every run of the mode "
                "(round 1 includes each virtual node's one-off start: worker process, "
                "encoder load); with --repeats the modes run interleaved; start-up = "
                "process start to end of the round-0 evaluation"
            ),
            "rounds": args.rounds,
            "repeats": args.repeats,
            "nodes": NODES,
            "data": f"{SUBSET}: {args.train_queries} train queries split non-IID",
            "recipe": args.recipe,
            "dispatch": dispatches,
            "recipe_fields": {mode: recipe_for(args.recipe, mode.split("@")[0]) for mode in runs},
            "modes": modes,
            "ratios": ratios,
            "ckks_target_ratio": 1.5,
            "ckks_within_target": ratios.get("ckks/plaintext", float("inf")) <= 1.5,
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
