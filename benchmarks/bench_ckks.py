"""CKKS secure aggregation cost: encrypt per node, sum on the coordinator, decrypt.

For each vector size (the full adapter, 384*384+384 = 147,840 values, and a rank-16
low-rank adapter, 2*384*16 = 12,288 values) and N nodes, times the three steps with the
default parameters (degree 8192, moduli 60+40+40+60, scale 2^40) and compares the size
of one encrypted update with the same update as plaintext float32. Prints one JSON object.

    .venv/bin/python benchmarks/bench_ckks.py [--nodes 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from crypto.ckks_aggregation import (
    CkksParameters,
    decrypt_vector,
    encrypt_vector,
    make_contexts,
    sum_encrypted,
)

T = TypeVar("T")

SIZES = {
    "full_adapter_384x384+384": 384 * 384 + 384,
    "low_rank_adapter_2x384x16": 2 * 384 * 16,
}


def _timed(fn: Callable[[], T]) -> tuple[T, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def bench(length: int, nodes: int, repeats: int, secret: bytes, public: bytes) -> dict[str, object]:
    rng = np.random.default_rng(0)
    updates = [rng.normal(0, 0.05, length).astype(np.float32) for _ in range(nodes)]
    expected = np.sum([u.astype(np.float64) for u in updates], axis=0)
    enc_s: list[float] = []
    sum_s: list[float] = []
    dec_s: list[float] = []
    max_err = 0.0
    encrypted: list[list[bytes]] = []
    for _ in range(repeats):
        encrypted = []
        for update in updates:
            started = time.perf_counter()
            encrypted.append(encrypt_vector(update, secret))
            enc_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        total = sum_encrypted(encrypted, public)
        sum_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        decrypted = decrypt_vector(total, secret, length)
        dec_s.append(time.perf_counter() - started)
        max_err = max(max_err, float(np.max(np.abs(decrypted - expected))))
    update_bytes = sum(len(c) for c in encrypted[0])
    plain_bytes = length * np.dtype(np.float32).itemsize
    return {
        "length": length,
        "nodes": nodes,
        "chunks_per_update": len(encrypted[0]),
        "encrypt_s_per_node_median": round(statistics.median(enc_s), 4),
        "sum_s_median": round(statistics.median(sum_s), 4),
        "decrypt_s_median": round(statistics.median(dec_s), 4),
        "update_bytes_encrypted": update_bytes,
        "update_bytes_plain_float32": plain_bytes,
        "expansion_factor": round(update_bytes / plain_bytes, 2),
        "max_abs_error_of_sum": max_err,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    params = CkksParameters()
    (secret, public), keygen_s = _timed(lambda: make_contexts(params))
    results: dict[str, Any] = {
        "parameters": params.as_dict(),
        "keygen_s": round(keygen_s, 4),
        "secret_context_bytes": len(secret),
        "public_context_bytes": len(public),
        "repeats": args.repeats,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
        },
        "sizes": {
            name: bench(length, args.nodes, args.repeats, secret, public)
            for name, length in SIZES.items()
        },
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
