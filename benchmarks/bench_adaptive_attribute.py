"""Static against adaptive attribute inference on BANKING77 intent, per protection.

The audit's attribute attack (Song and Raghunathan, CCS 2020) at full size: BANKING77's
whole train split is the attacker's labelled public data (10,003 queries, 77 intents),
its test split the targets (3,080). The static probe is trained on raw public vectors,
the adaptive one on the public vectors under the same protection (Tramèr et al.,
NeurIPS 2020); both are applied to the protected targets. Protections as the audit
builds them: Gaussian noise, DCPE (beta 1, a fresh key), a keyed rotation (the raw
rotated vectors, no alignment attacker) and the CKKS store's ciphertext words.

    python benchmarks/bench_adaptive_attribute.py --data-dir ../shared/data

Prints JSON: per protection and attacker, accuracy, advantage over the majority class,
and the seconds to protect the public data and fit the probe.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from attacks.adaptive_attribute import adaptive_probe
from attacks.attribute_inference import AttributeProbe, attribute_report
from attacks.protections import CkksEncryptedSearch, DcpeProtection, GaussianNoise, KeyedRotation
from embedding_core import EmbeddingCache, Encoder


def _banking(path: Path) -> tuple[list[str], list[str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [r["text"] for r in rows], [r["category"] for r in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--cache-dir", type=Path, default=Path("out/cache"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    encoder = Encoder.load()
    cache = EmbeddingCache(args.cache_dir)
    train, train_labels = _banking(args.data_dir / "banking77" / "train.csv")
    test, test_labels = _banking(args.data_dir / "banking77" / "test.csv")
    public = cache.get_or_encode(encoder, train, what="bench: BANKING77 train")
    targets = cache.get_or_encode(encoder, test, what="bench: BANKING77 test")
    dimension = public.shape[1]
    protections = {
        "raw": lambda v: np.asarray(v, np.float32),
        "gaussian sigma=0.05": GaussianNoise(0.05, seed=args.seed + 1).protect,
        "gaussian sigma=0.2": GaussianNoise(0.2, seed=args.seed + 1).protect,
        "dcpe beta=1": DcpeProtection(1.0).protect,
        "keyed rotation": KeyedRotation(dimension).protect,
        "ckks search ciphertext words": CkksEncryptedSearch(dimension).protect,
    }
    started = time.perf_counter()
    static = AttributeProbe().fit(public, train_labels)
    static_seconds = time.perf_counter() - started
    rows = []
    for name, protect in protections.items():
        seen = protect(targets)
        started = time.perf_counter()
        adaptive = adaptive_probe(protect, public, train_labels)
        adaptive_seconds = time.perf_counter() - started
        for attacker, probe, seconds in (
            ("static", static, static_seconds),
            ("adaptive", adaptive, adaptive_seconds),
        ):
            report = attribute_report(probe, seen, test_labels, target=name, threat_model="")
            rows.append(
                {
                    "protection": name,
                    "attacker": attacker,
                    "accuracy": round(report.metrics["accuracy"], 4),
                    "advantage": round(report.metrics["advantage"], 4),
                    "fit_seconds": round(seconds, 1),
                }
            )
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps({"public": len(train), "targets": len(test), "rows": rows}))


if __name__ == "__main__":
    main()
