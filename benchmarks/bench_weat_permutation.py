"""The WEAT/SEAT exact permutation test: meet-in-the-middle against materialised partitions.

For each size ``n``-vs-``n`` it times, in interleaved repeats (medians, so a shared
machine's load falls on both alike):

* ``mitm``: :func:`attacks.bias_permutation.permutation_test` (two-sided, exact, counted
  by meet-in-the-middle in bounded memory);
* ``materialised``: the earlier exact method, every ``n``-subset of the ``2n`` pooled
  associations written out with ``itertools.combinations`` and summed (one-sided count;
  the memory it needs is ``C(2n, n) * n`` indices, so it is run up to 12-vs-12 only);
* ``monte_carlo``: 100,000 random partitions, what sizes above the old exact limit
  (100,000 partitions, i.e. from 10-vs-10) used to get.

Both exact counts are checked equal (one-sided) before timing. One JSON line per size.

    .venv/bin/python benchmarks/bench_weat_permutation.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from numpy.typing import NDArray

from attacks.bias_permutation import permutation_test

MATERIALISE_UP_TO = 12  # 12-vs-12: 2.7 million partitions x 12 indices = 260 MB


def _materialised_greater(s_x: NDArray[np.float64], s_y: NDArray[np.float64]) -> float:
    """The earlier exact one-sided p: every partition's sum, from materialised combinations."""
    pooled = np.concatenate([s_x, s_y])
    n, k = pooled.size, s_x.size
    count = math.comb(n, k)
    flat = np.fromiter(
        itertools.chain.from_iterable(itertools.combinations(range(n), k)),
        dtype=np.intp,
        count=count * k,
    )
    sums = pooled[flat.reshape(count, k)].sum(axis=1)
    threshold = float(s_x.sum()) - 1e-10 * max(1.0, float(np.abs(pooled).sum()))
    return int(np.count_nonzero(sums >= threshold)) / count


def _seconds(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 10, 12, 15, 18, 20])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for n in args.sizes:
        s_x, s_y = rng.normal(0.3, 1.0, n), rng.normal(0.0, 1.0, n)
        runs: dict[str, Callable[[], object]] = {
            "mitm": partial(permutation_test, s_x, s_y, exact_limit=10**15),
            "monte_carlo": partial(permutation_test, s_x, s_y, exact_limit=0, n_samples=100_000),
        }
        if n <= MATERIALISE_UP_TO:
            runs["materialised"] = partial(_materialised_greater, s_x, s_y)
            mitm = permutation_test(s_x, s_y, alternative="greater", exact_limit=10**15)
            assert math.isclose(mitm.p_value, _materialised_greater(s_x, s_y), abs_tol=1e-12)
        times: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                times[name].append(_seconds(run))
        medians = {name: statistics.median(values) for name, values in times.items()}
        row: dict[str, object] = {
            "size": f"{n}v{n}",
            "partitions": math.comb(2 * n, n),
            "p_two_sided": permutation_test(s_x, s_y, exact_limit=10**15).p_value,
            **{f"{name}_s": round(value, 5) for name, value in medians.items()},
            "repeats": args.repeats,
            "load_1min": round(os.getloadavg()[0], 2),
            "cpu": platform.processor() or platform.machine(),
        }
        if "materialised" in medians:
            row["materialised_over_mitm"] = round(medians["materialised"] / medians["mitm"], 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
