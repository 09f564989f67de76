"""Does a bigger search budget help the optimisation inversion attack on SciFact claims?

Runs :class:`attacks.optimisation_inversion.OptimisationInverter` with each search
configuration on the first ``--targets`` SciFact test claims (the encoder as a black-box
oracle, the tokenizer's whole words as vocabulary) and prints one JSON line per
configuration: content-word F1 and seconds per target.

    .venv/bin/python benchmarks/bench_inversion_budget.py --targets 12 \\
        --configs '[{"candidates":128,"beam_width":1,"max_words":14,"refine_sweeps":1},
                    {"candidates":384,"beam_width":3,"max_words":20,"refine_sweeps":2}]'
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from attacks.optimisation_inversion import OptimisationInverter, SearchConfig, tokenizer_words
from attacks.text_metrics import score_texts
from embedding_core import Encoder
from embedding_core.data.beir import load_beir

DEFAULT_CONFIGS = (
    '[{"candidates":128,"beam_width":1,"max_words":14,"refine_sweeps":1},'
    '{"candidates":384,"beam_width":3,"max_words":20,"refine_sweeps":2}]'
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--targets", type=int, default=12)
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="JSON list of SearchConfig")
    args = parser.parse_args()
    encoder = Encoder.load()
    test = load_beir(args.data, split="test")
    claims = [test.queries[q] for q in test.qrels if q in test.queries][: args.targets]
    vocabulary = tokenizer_words(encoder.model.tokenizer.get_vocab().keys())
    targets = encoder.encode(claims)
    for raw in json.loads(args.configs):
        config = SearchConfig(**raw)
        inverter = OptimisationInverter(
            lambda texts: encoder.encode(list(texts), batch_size=1024),
            config=config,
        ).fit(vocabulary)
        started = time.perf_counter()
        scores = score_texts(claims, inverter.invert(targets))
        seconds = (time.perf_counter() - started) / len(claims)
        print(json.dumps({"config": raw, "targets": len(claims), "f1": round(scores.f1, 3),
                          "seconds_per_target": round(seconds, 1)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
