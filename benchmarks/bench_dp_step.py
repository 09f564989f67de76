"""Seconds per adapter training step: plain vs DP-SGD in each Opacus grad-sample mode.

SciFact-sized problem: 5,183 unit document vectors of width 384 (random, seeded),
919 records, a query adapter (residual-linear; low-rank rank 32), the corpus-softmax
loss and AdamW. One step = zero_grad + forward + loss + backward + optimizer step on a
fixed batch of ``batch`` records (DP: per-record clipping and noise included; data
loading excluded and timed separately). ``*_autograd_loss`` variants use the plain
autograd loss instead of the fused one. Variants are interleaved; medians over ``--steps`` steps.
``train_adapter`` section: the library's whole call (Poisson loader, ghost clipping,
noise, and its fixed costs: ``make_private`` and the RDP epsilon, about 0.15 s) vs its
plain loop, seconds per step over ``--end-to-end-epochs``, interleaved runs, medians.

Default one thread: on a machine whose cores are shared, a two-thread GEMM whose second
thread waits for a time slice took 20x longer here (0.28 s instead of 0.015 s per plain
step), which swamps the comparison; ``--threads 2`` on an idle machine.

    .venv/bin/python benchmarks/bench_dp_step.py --threads 1 --steps 25
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from dp_training import GRAD_SAMPLE_MODES, CorpusSoftmaxLoss, PackedRecords, batch_as_is
from embedding_core.adapter import Adapter

DOCS = 5183
RECORDS = 919
DIM = 384
TEMPERATURE = 0.05

Step = Callable[[], None]


def _unit(rows: int, generator: torch.Generator) -> torch.Tensor:
    return nn.functional.normalize(torch.randn(rows, DIM, generator=generator), dim=1)


def _plain_step(
    kind: str, queries: torch.Tensor, positives: torch.Tensor, docs: torch.Tensor, fused: bool
) -> Step:
    adapter = _adapter(kind)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-3)
    criterion = CorpusSoftmaxLoss(docs, temperature=TEMPERATURE, fused=fused)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        criterion(adapter(queries), positives).backward()
        optimizer.step()

    return step


def _adapter(kind: str) -> Adapter:
    return Adapter(DIM, side="query", kind=kind, rank=32 if kind == "low_rank" else None)


def _dp_step(
    kind: str,
    mode: str,
    queries: torch.Tensor,
    positives: torch.Tensor,
    docs: torch.Tensor,
    records: int,
    fused: bool,
) -> Step:
    from opacus import PrivacyEngine

    adapter = _adapter(kind)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=1e-3)
    criterion = CorpusSoftmaxLoss(docs, temperature=TEMPERATURE, fused=fused)
    loader = DataLoader(
        TensorDataset(torch.zeros(records, DIM), torch.zeros(records, dtype=torch.int64)),
        batch_size=queries.shape[0],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        made = PrivacyEngine(accountant="rdp").make_private(
            module=adapter,
            optimizer=optimizer,
            criterion=criterion,
            data_loader=loader,
            noise_multiplier=1.0,
            max_grad_norm=1.0,
            poisson_sampling=True,
            grad_sample_mode=mode,
            noise_generator=torch.Generator().manual_seed(1),
        )
    model, dp_optimizer = made[0], made[1]
    dp_criterion = made[2] if mode == "ghost" else criterion

    def step() -> None:
        dp_optimizer.zero_grad(set_to_none=True)
        dp_criterion(model(queries), positives).backward()
        dp_optimizer.step()

    return step


def _loader_fetch(batch: int, queries: torch.Tensor, positives: torch.Tensor) -> dict[str, Step]:
    """Poisson batch fetch: per-item TensorDataset vs the bulk ``PackedRecords`` dataset."""
    from opacus.data_loader import DPDataLoader

    def make(loader: DataLoader[Any]) -> Step:
        dp_loader = DPDataLoader.from_data_loader(loader)

        def fetch() -> None:
            next(iter(dp_loader))

        return fetch

    return {
        "loader_tensordataset": make(DataLoader(TensorDataset(queries, positives), batch)),
        "loader_records": make(
            DataLoader(PackedRecords(queries, positives), batch, collate_fn=batch_as_is)
        ),
    }


def bench(
    batch: int, kind: str, steps: int, warmup: int, modes: list[str], autograd_modes: list[str]
) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(0)
    docs = _unit(DOCS, generator)
    all_queries = _unit(RECORDS, generator)
    all_positives = torch.randint(0, DOCS, (RECORDS,), generator=generator)
    queries, positives = all_queries[:batch], all_positives[:batch]
    variants: dict[str, Step] = {
        "non_dp": _plain_step(kind, queries, positives, docs, True),
        "non_dp_autograd_loss": _plain_step(kind, queries, positives, docs, False),
    }
    with warnings.catch_warnings():
        # "Full backward hook is firing ... no inputs require gradients": expected.
        warnings.simplefilter("ignore")
        for mode in modes:
            variants[f"dp_{mode}"] = _dp_step(kind, mode, queries, positives, docs, RECORDS, True)
        for mode in autograd_modes:
            variants[f"dp_{mode}_autograd_loss"] = _dp_step(
                kind, mode, queries, positives, docs, RECORDS, False
            )
        variants.update(_loader_fetch(batch, all_queries, all_positives))
        times: dict[str, list[float]] = {name: [] for name in variants}
        for repeat in range(warmup + steps):
            for name, step in variants.items():
                started = time.perf_counter()
                step()
                elapsed = time.perf_counter() - started
                if repeat >= warmup:
                    times[name].append(elapsed)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratios = {}
    for name in medians:
        if name.startswith("dp_"):
            base = "non_dp_autograd_loss" if name.endswith("_autograd_loss") else "non_dp"
            ratios[f"{name} / {base}"] = medians[name] / medians[base]
    return {
        "batch": batch,
        "adapter": kind,
        "median_seconds": medians,
        "ratio_dp_over_non_dp": ratios,
    }


def end_to_end(batch: int, kind: str, repeats: int, epochs: int) -> dict[str, Any]:
    """Seconds per step of ``train_adapter`` itself (Poisson loader, ghost, accounting)."""
    from dp_training import DPConfig, InteractionSet, TrainConfig, train_adapter

    generator = torch.Generator().manual_seed(0)
    data = InteractionSet(
        query_vectors=_unit(RECORDS, generator).numpy(),
        positive_index=torch.randint(0, DOCS, (RECORDS,), generator=generator).numpy(),
        doc_vectors=_unit(DOCS, generator).numpy(),
    )
    config = TrainConfig(epochs=epochs, batch_size=batch, temperature=TEMPERATURE)
    dp = DPConfig(noise_multiplier=1.0, max_grad_norm=1.0, delta=1e-5, noise_seed=0)
    per_step: dict[str, list[float]] = {"non_dp": [], "dp_ghost": []}
    for _ in range(repeats):
        for name, dp_config in (("non_dp", None), ("dp_ghost", dp)):
            report = train_adapter(_adapter(kind), data, config, dp=dp_config)
            per_step[name].append(report.seconds / report.steps)
    medians = {name: statistics.median(values) for name, values in per_step.items()}
    return {
        "batch": batch,
        "adapter": kind,
        "epochs": epochs,
        "median_seconds_per_step": medians,
        "ratio_dp_over_non_dp": medians["dp_ghost"] / medians["non_dp"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per variant")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batches", type=int, nargs="+", default=[256, 64])
    parser.add_argument("--kinds", nargs="+", default=["residual_linear", "low_rank"])
    parser.add_argument("--modes", nargs="+", default=list(GRAD_SAMPLE_MODES))
    parser.add_argument(
        "--end-to-end-repeats",
        type=int,
        default=5,
        help="train_adapter runs per variant (0 to skip)",
    )
    parser.add_argument("--end-to-end-epochs", type=int, default=10)
    parser.add_argument(
        "--only-train-adapter", action="store_true", help="skip the per-step benchmark"
    )
    parser.add_argument(
        "--autograd-modes",
        nargs="*",
        default=["ghost", "hooks"],
        help="DP modes also timed with the plain-autograd (unfused) loss",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = [
        bench(batch, kind, args.steps, args.warmup, args.modes, args.autograd_modes)
        for kind in args.kinds
        for batch in args.batches
        if not args.only_train_adapter
    ]
    train_runs = [
        end_to_end(batch, kind, args.end_to_end_repeats, epochs=args.end_to_end_epochs)
        for kind in args.kinds
        for batch in args.batches
        if args.end_to_end_repeats > 0
    ]
    print(
        json.dumps(
            {
                "docs": DOCS,
                "dim": DIM,
                "records": RECORDS,
                "threads": args.threads,
                "steps": args.steps,
                "torch": torch.__version__,
                "machine": platform.processor() or platform.machine(),
                "results": results,
                "train_adapter": train_runs,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
