"""Sweep federated recipes in-process (FedAvg of real local rounds, no transport).

Runs ``client_node.local_round.run_local_round`` on each member folder (DP-SGD and the
node ledger included; ledgers in a scratch copy), averages the states as FedAvg does
and scores SciFact test nDCG@10 after every round. Used to choose the demo's recipe;
the real federation (Flower, CKKS) is then run by ``fedembed demo``. Prints JSON lines.

Spec keys: ``name``, ``epochs``, ``batch``, ``lr`` (required); ``rounds`` (5), ``dp``
(true), ``eps`` (8), ``kind``, ``rank``, ``temp`` (0.05), ``C`` (clip, 1.0); and two
coordinator-side post-processings of the aggregated states (no extra privacy cost):
``server_momentum`` (FedAvgM, Hsu et al. 2019, arXiv:1909.06335; 0 = plain FedAvg) and
``server_tail`` (score the mean of the global states of the last k rounds, Polyak
averaging across rounds; 0 = the last state); ``shares`` (distributed DP: each node takes
one noisy full-batch step with 1/sqrt(shares) of the noise, see
``dp_training/distributed_dp.py``; 0 = off) and ``server_lr`` (Adam on the
coordinator, ``coordinator/server_adam.py``; 0 = off). ``--repeats`` runs each spec again with
fresh DP noise (one JSON line per run).

    .venv/bin/python benchmarks/federated_recipe_sweep.py --members out/demo/members \\
        --data-dir ../shared/data --specs '[{"name": "dp", "epochs": 20, "batch": 4096,
        "lr": 0.003}]'
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from flwr.serverapp.strategy import FedAvg

from client_node.local_round import run_local_round
from coordinator.server_adam import ServerAdam
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.cache import EmbeddingCache
from embedding_core.data import load_beir, resolve_dataset_dir
from embedding_core.encoder import Encoder
from embedding_core.evaluation import RetrievalVectors, embed_retrieval, score_retrieval
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings


def flat(state: dict[str, torch.Tensor]) -> np.ndarray:
    """The state's tensors (in key order) as one float64 vector."""
    return np.concatenate([v.detach().double().numpy().ravel() for v in state.values()])


def unflat(vector: np.ndarray, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Split ``vector`` into float32 tensors shaped like ``like``."""
    out, offset = {}, 0
    for key, ref in like.items():
        out[key] = torch.from_numpy(vector[offset : offset + ref.numel()].copy()).float()
        out[key] = out[key].reshape(ref.shape)
        offset += ref.numel()
    return out


def trial(
    members: Path, vectors: RetrievalVectors, test: Any, spec: dict[str, Any], scratch: Path
) -> dict[str, Any]:
    rounds, dp, eps = (
        int(spec.get("rounds", 5)),
        bool(spec.get("dp", True)),
        float(spec.get("eps", 8.0)),
    )
    kind, rank = str(spec.get("kind", "residual_linear")), int(spec.get("rank", 0))
    dirs = {}
    for node in sorted(p.name for p in members.iterdir() if p.is_dir()):
        dest = scratch / str(spec["name"]) / node
        shutil.copytree(members / node, dest, ignore=shutil.ignore_patterns("privacy_ledger.json"))
        dirs[node] = dest
    adapter = Adapter(384, kind=kind, rank=rank or None, side=AdapterSide.QUERY)
    state = {k: v.clone() for k, v in adapter.state_dict().items()}
    started, history, eps_spent = time.perf_counter(), [], []
    beta, server_tail = float(spec.get("server_momentum", 0.0)), int(spec.get("server_tail", 0))
    velocity: dict[str, torch.Tensor] = {}
    polyak: list[dict[str, torch.Tensor]] = []
    server_lr = float(spec.get("server_lr", 0.0))
    server_adam = ServerAdam(FedAvg(), learning_rate=server_lr) if server_lr > 0 else None
    for r in range(1, rounds + 1):
        fedavg_start = state
        settings = RoundSettings(
            num_server_rounds=rounds,
            run_tag=str(spec["name"]),
            adapter_kind=kind,
            adapter_rank=rank,
            local_epochs=int(spec["epochs"]),
            batch_size=int(spec["batch"]),
            learning_rate=float(spec["lr"]),
            temperature=float(spec.get("temp", 0.05)),
            dp_enabled=dp,
            target_epsilon=eps,
            max_grad_norm=float(spec.get("C", 1.0)),
            dp_noise_shares=int(spec.get("shares", 0)),
            weighting="declared-counts",
        )
        results = [
            run_local_round(
                node_dir=d,
                node_name=n,
                global_state=state,
                settings=settings,
                server_round=r,
                node_privacy=NodePrivacy(max_epsilon=eps, require_dp=dp, public_record_count=True),
            )
            for n, d in dirs.items()
        ]
        weights = [x.metrics["num-examples"] for x in results]
        fedavg = {
            k: sum(x.state[k] * w for x, w in zip(results, weights, strict=True)) / sum(weights)
            for k in state
        }
        # Server momentum (FedAvgM, Hsu et al. 2019): velocity of the averaged update.
        velocity = {
            k: beta * velocity.get(k, torch.zeros_like(v)) + (fedavg[k] - state[k])
            for k, v in state.items()
        }
        state = {k: state[k] + velocity[k] for k in state}
        if server_adam is not None:
            step = server_adam.step(flat(fedavg_start) - flat(state))
            state = unflat(flat(fedavg_start) + step, state)
        # Coordinator-side Polyak averaging of the global states (output only).
        if r > rounds - server_tail:
            polyak.append(state)
        output = {k: sum(s[k] for s in polyak) / len(polyak) for k in state} if polyak else state
        adapter.load_state_dict(output)
        history.append(round(score_retrieval(vectors, test, adapter=adapter)["ndcg@10"], 4))
        eps_spent = [x.metrics.get("epsilon") for x in results]
    return {
        **spec,
        "ndcg@10_per_round": history,
        "epsilon_per_node": eps_spent,
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=Path, required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--specs", required=True, help="JSON list of recipe dicts")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each recipe")
    args = parser.parse_args()
    torch.set_num_threads(1)
    test = load_beir(resolve_dataset_dir(args.data_dir, "scifact", marker="corpus.jsonl"))
    vectors = embed_retrieval(Encoder.load(), test, cache=EmbeddingCache(args.cache_dir))
    with tempfile.TemporaryDirectory() as scratch:
        for spec in json.loads(args.specs):
            for repeat in range(args.repeats):
                run = {**spec, "name": f"{spec['name']}#{repeat}", "repeat": repeat}
                print(
                    json.dumps(trial(args.members, vectors, test, run, Path(scratch))), flush=True
                )


if __name__ == "__main__":
    main()
