"""Does a bigger search budget or a bigger vocabulary help optimisation inversion on SciFact?

Runs :class:`attacks.optimisation_inversion.OptimisationInverter` with each search
configuration and each vocabulary on ``--targets`` SciFact test claims from ``--start``
(the encoder as a black-box oracle; vocabulary = the tokenizer's whole words, plus the
public wordfreq words of Zipf frequency >= each ``--min-zipf``) and prints one JSON line
per (configuration, vocabulary): content-word precision, recall, F1 and seconds per target.

    .venv/bin/python benchmarks/bench_inversion_budget.py --targets 12 \\
        --configs '[{"candidates":128,"beam_width":1,"max_words":14,"refine_sweeps":1},
                    {"candidates":384,"beam_width":3,"max_words":20,"refine_sweeps":2}]'
    .venv/bin/python benchmarks/bench_inversion_budget.py --targets 42 --min-zipf none 2 \
        --configs '[{"candidates":128,"beam_width":1,"max_words":14,"refine_sweeps":1}]'

``--word-map`` adds, for each configuration, a run whose shortlist ranks words by a
:class:`attacks.word_relevance_map.WordRelevanceMap` learned on the attacker's public
sentences (STS-B and BANKING77 train, as in the audit); ``--map-only`` skips the run
with the plain cosine shortlist. ``--wordnet DIR`` adds WordNet's glosses to the map's
public sentences (Debian wordnet-base: ``/usr/share/wordnet``), fitted for
``--map-epochs`` passes (the audit's: 1 with glosses, 3 without).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from attacks.inversion_vocabulary import frequent_words, tokenizer_words
from attacks.optimisation_inversion import OptimisationInverter, SearchConfig
from attacks.text_metrics import score_texts
from attacks.word_relevance_map import WordRelevanceMap
from attacks.wordnet_glosses import wordnet_glosses
from embedding_core import Encoder
from embedding_core.cache import EmbeddingCache
from embedding_core.data import load_stsb
from embedding_core.data.beir import load_beir


def public_sentences(data: Path) -> list[str]:
    """The attacker's public sentences: STS-B (all splits) and BANKING77 train."""
    seen: dict[str, None] = {}
    for split in ("train", "dev", "test"):
        for pair in load_stsb(data / "stsb", split=split):
            seen.setdefault(pair.sentence1)
            seen.setdefault(pair.sentence2)
    with open(data / "banking77" / "train.csv", newline="", encoding="utf-8") as handle:
        seen.update((row["text"], None) for row in csv.DictReader(handle))
    return list(seen)


DEFAULT_CONFIGS = (
    '[{"candidates":128,"beam_width":1,"max_words":14,"refine_sweeps":1},'
    '{"candidates":384,"beam_width":3,"max_words":20,"refine_sweeps":2}]'
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/scifact"))
    parser.add_argument("--word-map", action="store_true", help="also run with a word map")
    parser.add_argument(
        "--map-only", action="store_true", help="with --word-map, skip the cosine shortlist run"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="embedding cache")
    parser.add_argument("--wordnet", type=Path, default=None, help="WordNet folder (word map)")
    parser.add_argument("--map-epochs", type=int, default=None, help="word map passes")
    parser.add_argument("--targets", type=int, default=12)
    parser.add_argument("--start", type=int, default=0, help="first claim (test-qrels order)")
    parser.add_argument("--configs", default=DEFAULT_CONFIGS, help="JSON list of SearchConfig")
    parser.add_argument(
        "--min-zipf", nargs="+", default=["none"], help="'none' = tokenizer words only"
    )
    args = parser.parse_args()
    encoder = Encoder.load()
    test = load_beir(args.data, split="test")
    claims = [test.queries[q] for q in test.qrels if q in test.queries]
    claims = claims[args.start : args.start + args.targets]
    base = tokenizer_words(encoder.model.tokenizer.get_vocab().keys())
    vocabularies: dict[str, list[str]] = {}
    for raw_zipf in args.min_zipf:
        zipf = None if raw_zipf == "none" else float(raw_zipf)
        extra = [] if zipf is None else frequent_words(min_zipf=zipf)
        vocabularies[raw_zipf] = sorted({*base, *extra})
    every = sorted({w for words in vocabularies.values() for w in words})
    cache = EmbeddingCache(args.cache_dir) if args.cache_dir else None
    started = time.perf_counter()
    vectors = (
        cache.get_or_encode(encoder, every, batch_size=1024)
        if cache
        else encoder.encode(every, batch_size=1024)
    )
    embed_s = time.perf_counter() - started
    row_of = {w: i for i, w in enumerate(every)}
    targets = encoder.encode(claims)
    public = public_sentences(args.data.parent) if args.word_map else []
    public_vectors = (
        (cache.get_or_encode(encoder, public) if cache else encoder.encode(public))
        if public
        else None
    )
    if public_vectors is not None and args.wordnet is not None:
        glosses = wordnet_glosses(args.wordnet)
        gloss_vectors = cache.get_or_encode(encoder, glosses) if cache else encoder.encode(glosses)
        public = public + glosses
        public_vectors = np.vstack([public_vectors, gloss_vectors])
    map_epochs = args.map_epochs or (1 if args.wordnet is not None else 3)
    for raw in json.loads(args.configs):
        for raw_zipf, words in vocabularies.items():
            fitted = OptimisationInverter(
                lambda texts: encoder.encode(list(texts), batch_size=1024),
                config=SearchConfig(**raw),
            ).fit(words, vectors=vectors[[row_of[w] for w in words]])
            runs = [] if args.map_only and public_vectors is not None else [("none", fitted)]
            if public_vectors is not None:
                word_map = WordRelevanceMap(epochs=map_epochs).fit(
                    public, public_vectors, words, fitted.word_vectors
                )
                runs.append(("public sentences", fitted.with_word_map(word_map)))
            for map_name, inverter in runs:
                started = time.perf_counter()
                scores = score_texts(claims, inverter.invert(targets))
                seconds = (time.perf_counter() - started) / len(claims)
                print(json.dumps({"config": raw, "min_zipf": raw_zipf, "vocabulary": len(words),
                                  "word_map": map_name, "map_epochs": map_epochs,
                                  "wordnet": args.wordnet and str(args.wordnet),
                                  "targets": len(claims), "start": args.start,
                                  "precision": round(scores.precision, 3),
                                  "recall": round(scores.recall, 3), "f1": round(scores.f1, 3),
                                  "seconds_per_target": round(seconds, 1),
                                  "vocabulary_embed_s": round(embed_s)}), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
