"""Main-job wall time from empty caches: ``fedembed demo`` in a subprocess.

Every cache the job writes is a fresh folder under ``--work`` (the embedding cache with
the ONNX export beside it, Hugging Face's and Flower's homes stay as they are: the model
is bundled). Prints one JSON object: the total wall seconds, each step's seconds (from
the job's ``results.json``), the load average at the start and the end, and the job's
exit status. The machine's other load biases the number: the load averages say how much.

    python benchmarks/bench_main_job.py --data-dir ../shared/data [--work /tmp/main-job]
        [-- extra demo flags, e.g. --full-audit]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=None, help="Scratch folder (emptied).")
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder.")
    parser.add_argument("demo_args", nargs="*", help="Extra flags for fedembed demo.")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="main-job-"))
    shutil.rmtree(work, ignore_errors=True)
    cache, out = work / "cache" / "embeddings", work / "out"
    cache.mkdir(parents=True)
    env = {
        **os.environ,
        "FEDEMBED_CACHE_DIR": str(cache),
        "HF_HUB_OFFLINE": "1",
        "FEDEMBED_PROGRESS": "log",
    }
    command = [sys.executable, "-m", "fedembed", "demo", "--data-dir", str(args.data_dir),
               "--out", str(out), *args.demo_args]  # fmt: skip
    load_start = _load()
    started = time.perf_counter()
    with (work / "demo.log").open("w") as log:
        result = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                cwd=REPO_ROOT, check=False)  # fmt: skip
    seconds = time.perf_counter() - started
    load_end = _load()
    results_file = out / "results.json"
    saved = json.loads(results_file.read_text()) if results_file.is_file() else {}
    report = {
        "command": " ".join(["fedembed", *command[3:]]),
        "exit_code": result.returncode,
        "wall_s": round(seconds, 1),
        "steps_s": saved.get("timings", {}),
        "encoder_backend": saved.get("encoder_backend"),
        "load_average_start": load_start,
        "load_average_end": load_end,
        "cpus": os.cpu_count(),
        "log": str(work / "demo.log"),
    }
    print(json.dumps(report, indent=2))
    if not args.keep and result.returncode == 0:
        shutil.rmtree(work / "cache", ignore_errors=True)


if __name__ == "__main__":
    main()
