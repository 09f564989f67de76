"""Bias audit (WEAT/SEAT, all 46 sent-bias tests): base encoder vs base + released adapter.

Prints one JSON object per test (effect sizes, p-values, Holm-adjusted p-values of both
models side by side; for weat1-10 also Caliskan et al.'s published GloVe effect size) and
a final summary line (run times, conventions). Effect sizes use the sample standard
deviation (ddof=1, as the SEAT reference code).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_bias_audit.py \
        --data-dir ../shared/data [--adapter DIR] [--n-samples 100000]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from attacks.bias_audit import GLOVE_PUBLISHED, load_bias_tests, run_bias_audit
from attacks.bias_weat import DEFAULT_EXACT_LIMIT, DEFAULT_MC_SAMPLES
from embedding_core.adapter import Adapter
from embedding_core.cache import EmbeddingCache
from embedding_core.encoder import Encoder

DEFAULT_CACHE = Path("/work/fedembed-cache")
DEFAULT_ADAPTER = Path("/work/demo-run2/out/runs/dp-eps8/global_adapter")
_ROUND = 4


def _cell(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "effect_size": round(row["effect_size"], _ROUND),
        "p": row["p_value"],
        "p_holm": row["p_holm"],
        "significant": row["significant"],
        "method": row["p_method"],
        "n_permutations": row["n_permutations"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--adapter", type=Path, default=DEFAULT_ADAPTER)
    parser.add_argument("--n-samples", type=int, default=DEFAULT_MC_SAMPLES)
    parser.add_argument("--exact-limit", type=int, default=DEFAULT_EXACT_LIMIT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    started = time.perf_counter()
    tests = load_bias_tests(args.data_dir)
    encoder = Encoder.load()
    cache = EmbeddingCache(args.cache_dir)
    adapter = Adapter.load(args.adapter)
    options: dict[str, Any] = {
        "n_samples": args.n_samples,
        "exact_limit": args.exact_limit,
        "seed": args.seed,
    }
    base = run_bias_audit(tests, encoder, cache=cache, target="all-MiniLM-L6-v2", **options)
    tuned = run_bias_audit(
        tests,
        encoder,
        adapter=adapter,
        cache=cache,
        target=f"all-MiniLM-L6-v2 + adapter {args.adapter.parent.name}",
        **options,
    )
    for row_base, row_tuned in zip(base.details["tests"], tuned.details["tests"], strict=True):
        print(
            json.dumps(
                {
                    "test": row_base["test"],
                    "level": row_base["level"],
                    "targets": row_base["targets"],
                    "attributes": row_base["attributes"],
                    "sizes": row_base["sizes"],
                    "glove_published": GLOVE_PUBLISHED.get(row_base["test"]),
                    "base": _cell(row_base),
                    "adapter": _cell(row_tuned),
                }
            )
        )
    summary: dict[str, Any] = {"benchmark": "bias_audit", "adapter": str(args.adapter)}
    for label, report in (("base", base), ("adapter", tuned)):
        rows = report.details["tests"]
        summary[label] = {
            "seconds": round(report.seconds, 2),
            "embed_seconds": round(report.details["embed_seconds"], 2),
            "n_tests": len(rows),
            "n_significant_holm": int(report.metrics["n_significant"]),
            "mean_abs_effect_size": round(report.metrics["mean_abs_effect_size"], _ROUND),
            "mean_abs_effect_size_word": round(
                sum(abs(r["effect_size"]) for r in rows if r["level"] == "word")
                / max(1, sum(r["level"] == "word" for r in rows)),
                _ROUND,
            ),
            "mean_abs_effect_size_sentence": round(
                sum(abs(r["effect_size"]) for r in rows if r["level"] == "sentence")
                / max(1, sum(r["level"] == "sentence" for r in rows)),
                _ROUND,
            ),
        }
    summary.update(
        {
            "std_convention": base.details["std_convention"],
            "alpha": base.details["alpha"],
            "n_texts": base.details["n_texts"],
            "cache_hits": cache.stats.hits,
            "cache_misses": cache.stats.misses,
            "total_seconds": round(time.perf_counter() - started, 2),
            "cpu": platform.processor() or platform.machine(),
            **options,
        }
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
