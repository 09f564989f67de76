"""CKKS secure aggregation cost, phase by phase: encode, encrypt, serialize, load, sum, decrypt.

For each vector size (the full adapter plus the distributed-DP count slot,
384*384+384+1 = 147,841 values, and a rank-16 low-rank adapter, 2*384*16 = 12,288 values)
and N nodes, times every phase of two implementations, interleaved repeat by repeat so
that shared load hits both alike:

- ``format2``: this fedembed (``crypto.ckks_aggregation``): the consortium's default
  parameters (degree 8192, one 60-bit data prime + SEAL's key-switching prime, scale
  2^40), secret-key encryption into seeded ciphertexts, two values per slot;
- ``format2-old-kit``: the same code with the parameters of kits made before 2026-12-07
  (moduli 60+40+40+60): what such a consortium pays until it re-provisions;
- ``tenseal-v1``: the implementation before 2026-12-07, rebuilt here with TenSEAL
  vectors (60+40+40+60, public-key encryption, one value per slot), for the baseline.

Phases (seconds; per node where marked): ``encode_s`` and ``encrypt_s`` and
``serialize_s`` per node (their sum is what a node pays), ``load_s`` (deserialize all N
updates on the decrypting node), ``add_s`` (sum them), ``decrypt_s`` (decrypt and decode
the sum); ``decrypting_node_s`` is the decrypting node's whole step
(``decrypt_sum``: load, add, decrypt); bytes per update and the largest error of the
decrypted sum. Prints one JSON object.

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
from typing import Any

import numpy as np
import tenseal as ts
import tenseal.sealapi as sealapi

from crypto.ckks_aggregation import (
    CkksParameters,
    decrypt_sum,
    decrypt_vector,
    encrypt_vector,
    make_contexts,
    sum_encrypted,
)
from crypto.ckks_context import ScratchFile, seal_handles

SIZES = {
    "full_adapter_384x384+384+slot": 384 * 384 + 384 + 1,
    "low_rank_adapter_2x384x16": 2 * 384 * 16,
}
OLD_PARAMETERS = CkksParameters(8192, (60, 40, 40, 60), 40)

Phases = dict[str, float]


def _clock() -> float:
    return time.perf_counter()


def format2_phases(updates: list[np.ndarray], secret: bytes, public: bytes) -> tuple[Phases, int]:
    """Every phase of this fedembed's path, and the bytes of one update."""
    handles = seal_handles(secret, what="context", need_secret=True)
    encoder = sealapi.CKKSEncoder(handles.context)
    encryptor = sealapi.Encryptor(handles.context, handles.secret_key)
    phases = {"encode_s": 0.0, "encrypt_s": 0.0, "serialize_s": 0.0}
    per = handles.degree
    with ScratchFile() as scratch:  # the phases of encrypt_vector, one by one
        for update in updates:
            for start in range(0, update.size, per):
                part = np.zeros(per)
                chunk = update[start : start + per]
                part[: chunk.size] = chunk
                t0 = _clock()
                plain = sealapi.Plaintext()
                encoder.encode((part[0::2] + 1j * part[1::2]).tolist(), handles.scale, plain)
                t1 = _clock()
                seeded = encryptor.encrypt_symmetric(plain)
                t2 = _clock()
                seeded.save(scratch.path)
                scratch.get()
                t3 = _clock()
                phases["encode_s"] += t1 - t0
                phases["encrypt_s"] += t2 - t1
                phases["serialize_s"] += t3 - t2
    for key in list(phases):
        phases[key] /= len(updates)
    t0 = _clock()
    encrypted = [encrypt_vector(u, secret, summands=len(updates)) for u in updates]
    phases["encrypt_vector_s_per_node"] = (_clock() - t0) / len(updates)
    with ScratchFile() as scratch:
        t0 = _clock()
        loaded = []
        for node_chunks in encrypted:
            row = []
            for data in node_chunks:
                ciphertext = sealapi.Ciphertext()
                ciphertext.load(handles.context, scratch.put(data[8:]))
                row.append(ciphertext)
            loaded.append(row)
        t1 = _clock()
        evaluator = sealapi.Evaluator(handles.context)
        for row in loaded[1:]:
            for acc, ciphertext in zip(loaded[0], row, strict=True):
                evaluator.add_inplace(acc, ciphertext)
        t2 = _clock()
    phases["load_s"], phases["add_s"] = t1 - t0, t2 - t1
    length = updates[0].size
    t0 = _clock()
    summed = sum_encrypted(encrypted, public)
    phases["coordinator_sum_s"] = _clock() - t0
    t0 = _clock()
    decrypt_vector(summed, secret, length)
    phases["decrypt_s"] = _clock() - t0
    t0 = _clock()
    total = decrypt_sum(encrypted, secret, length)
    phases["decrypting_node_s"] = _clock() - t0
    phases["max_abs_error"] = float(np.max(np.abs(total - np.sum(updates, axis=0))))
    return phases, sum(len(c) for c in encrypted[0])


def tenseal_v1_phases(updates: list[np.ndarray], context: Any) -> tuple[Phases, int]:
    """The path before 2026-12-07: a TenSEAL vector of N/2 values per chunk."""
    slots = 4096
    phases = {"encode_s": 0.0, "encrypt_s": 0.0, "serialize_s": 0.0}
    encrypted: list[list[bytes]] = []
    for update in updates:
        chunks = []
        for start in range(0, update.size, slots):
            t0 = _clock()
            vector = ts.ckks_vector(context, update[start : start + slots].tolist())
            t1 = _clock()
            chunks.append(vector.serialize())
            t2 = _clock()
            phases["encrypt_s"] += t1 - t0  # TenSEAL encodes and encrypts in one call
            phases["serialize_s"] += t2 - t1
        encrypted.append(chunks)
    for key in list(phases):
        phases[key] /= len(updates)
    phases["encrypt_vector_s_per_node"] = phases["encrypt_s"] + phases["serialize_s"]
    t0 = _clock()
    loaded = [[ts.ckks_vector_from(context, data) for data in update] for update in encrypted]
    t1 = _clock()
    for row in loaded[1:]:
        for acc, vector in zip(loaded[0], row, strict=True):
            acc.add_(vector)
    t2 = _clock()
    total = np.concatenate([vector.decrypt() for vector in loaded[0]])
    t3 = _clock()
    phases.update(load_s=t1 - t0, add_s=t2 - t1, decrypt_s=t3 - t2)
    phases["decrypting_node_s"] = t3 - t0  # the old node also re-serialized the sum
    phases["max_abs_error"] = float(np.max(np.abs(total - np.sum(updates, axis=0))))
    return phases, sum(len(c) for c in encrypted[0])


def _median(runs: list[Phases]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key in runs[0]:
        values = [run[key] for run in runs]
        out[key] = max(values) if key == "max_abs_error" else round(statistics.median(values), 4)
    return out


def bench(length: int, nodes: int, repeats: int, keys: dict[str, Any]) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    updates = [rng.normal(0, 0.05, length) for _ in range(nodes)]
    runs: dict[str, list[Phases]] = {}
    sizes: dict[str, int] = {}
    steps: dict[str, Callable[[], tuple[Phases, int]]] = {
        "format2": lambda: format2_phases(updates, *keys["format2"]),
        "format2-old-kit": lambda: format2_phases(updates, *keys["format2-old-kit"]),
        "tenseal-v1": lambda: tenseal_v1_phases(updates, keys["tenseal-v1"]),
    }
    for _ in range(repeats):
        for name, step in steps.items():
            phases, sizes[name] = step()
            runs.setdefault(name, []).append(phases)
    plain = length * np.dtype(np.float32).itemsize
    result: dict[str, Any] = {"length": length, "nodes": nodes}
    for name, name_runs in runs.items():
        result[name] = {
            **_median(name_runs),
            "update_bytes": sizes[name],
            "expansion_vs_float32": round(sizes[name] / plain, 2),
        }
    base = result["tenseal-v1"]
    result["speed-up_format2_vs_tenseal-v1"] = {
        key: round(base[key] / result["format2"][key], 1)
        for key in ("encrypt_vector_s_per_node", "decrypting_node_s", "update_bytes")
        if result["format2"][key]
    }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    started = _clock()
    secret, public = make_contexts()
    keygen_s = _clock() - started
    old_secret, old_public = make_contexts(OLD_PARAMETERS)
    legacy = ts.context_from(old_secret)
    keys = {
        "format2": (secret, public),
        "format2-old-kit": (old_secret, old_public),
        "tenseal-v1": legacy,
    }
    results: dict[str, Any] = {
        "parameters": CkksParameters().as_dict(),
        "old_kit_parameters": OLD_PARAMETERS.as_dict(),
        "keygen_s": round(keygen_s, 4),
        "secret_context_bytes": len(secret),
        "public_context_bytes": len(public),
        "repeats": args.repeats,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        },
        "sizes": {
            name: bench(length, args.nodes, args.repeats, keys) for name, length in SIZES.items()
        },
    }
    results["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
