"""Optimisation inversion: exact recovery through a known bag-of-words oracle, real text
recovery through all-MiniLM-L6-v2, and nothing recovered from noise."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from attacks.inversion_vocabulary import tokenizer_words, zipf_frequency
from attacks.optimisation_inversion import OptimisationInverter, Oracle, SearchConfig
from attacks.text_metrics import score_texts
from embedding_core import Encoder

WORDS = [f"w{chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(120)]
DIMENSION = 64


def _word_rows() -> dict[str, np.ndarray]:
    """Each of ``WORDS`` with its row of the bag-of-words oracle's table."""
    table = np.random.default_rng(99).standard_normal((len(WORDS), DIMENSION))
    return dict(zip(WORDS, table, strict=True))


def _sum_oracle(rows: dict[str, np.ndarray]) -> Oracle:
    """An oracle that embeds a text as the sum of its words' rows (a bag of words)."""

    def oracle(texts: Sequence[str]) -> np.ndarray:
        return np.asarray([sum(rows[w] for w in t.split()) for t in texts])

    return oracle


_bag_oracle = _sum_oracle(_word_rows())


def test_search_recovers_the_exact_word_set_through_a_bag_of_words_oracle() -> None:
    # Prepare: five-word targets of a 120-word vocabulary; the oracle is invertible.
    rng = np.random.default_rng(3)
    targets = [" ".join(rng.choice(WORDS, size=5, replace=False)) for _ in range(6)]
    inverter = OptimisationInverter(
        _bag_oracle, config=SearchConfig(candidates=30, beam_width=2, max_words=8)
    ).fit(WORDS)
    # Execute
    recovered = inverter.invert(_bag_oracle(targets))
    # Assert: every word found, nothing extra (order is not recoverable from a bag).
    for target, guess in zip(targets, recovered, strict=True):
        assert sorted(guess.split()) == sorted(target.split())
    assert inverter.oracle_calls > len(WORDS)


def test_search_finds_nothing_shared_when_the_target_is_noise() -> None:
    # Prepare
    rng = np.random.default_rng(4)
    targets = [" ".join(rng.choice(WORDS, size=5, replace=False)) for _ in range(6)]
    inverter = OptimisationInverter(_bag_oracle, config=SearchConfig(candidates=20)).fit(WORDS)
    noise = np.random.default_rng(5).standard_normal((6, DIMENSION))
    # Execute
    scores = score_texts(targets, inverter.invert(noise))
    # Assert: chance level for 5 of 120 words is far below the exact recovery above.
    assert scores.f1 < 0.3


@pytest.mark.parametrize(
    "field",
    [
        "candidates",
        "beam_width",
        "max_words",
        "batch_size",
        "refine_sweeps",
        "residual_rounds",
        "residual_candidates",
        "residual_words",
        "restarts",
        "restart_words",
        "restart_candidates",
        "scaffold_words",
    ],
)
def test_search_config_rejects_out_of_range_budgets(field: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=field):
        SearchConfig(**{field: -1})


def test_fit_refuses_an_empty_vocabulary() -> None:
    with pytest.raises(ValueError, match="non-empty vocabulary"):
        OptimisationInverter(_bag_oracle).fit([])
    with pytest.raises(ValueError, match="distinct, non-blank"):
        OptimisationInverter(_bag_oracle).fit(["wab", " "])
    with pytest.raises(ValueError, match="distinct, non-blank"):
        OptimisationInverter(_bag_oracle).fit(["wab", "wab"])


def test_fit_takes_known_vectors_instead_of_calling_the_oracle() -> None:
    # Prepare
    calls: list[int] = []

    def counting(texts: list[str] | tuple[str, ...]) -> np.ndarray:
        calls.append(len(texts))
        return _bag_oracle(texts)

    vectors = _bag_oracle(WORDS)
    # Execute
    inverter = OptimisationInverter(counting, config=SearchConfig(candidates=20)).fit(
        WORDS, vectors=vectors
    )
    # Assert: no oracle call for the vocabulary, same shortlist as embedding it
    assert calls == []
    fresh = OptimisationInverter(_bag_oracle, config=SearchConfig(candidates=20)).fit(WORDS)
    target = _bag_oracle(["wab wac"])[0]
    target = target / np.linalg.norm(target)
    assert inverter.shortlist(target) == fresh.shortlist(target)
    with pytest.raises(ValueError, match="one embedding per word"):
        OptimisationInverter(counting).fit(WORDS, vectors=vectors[:5])


def test_invert_before_fit_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="fit must run"):
        OptimisationInverter(_bag_oracle).invert(np.ones((1, DIMENSION)))


def test_recovers_content_words_of_held_out_banking_queries(shared_data_dir: Path) -> None:
    # Prepare: the real encoder as a black box; the vocabulary is its tokenizer's.
    encoder = Encoder.load()
    with open(shared_data_dir / "banking77" / "test.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    texts = [rows[i]["text"] for i in (0, 500, 1000, 1500, 2000, 2500)]
    inverter = OptimisationInverter(
        lambda t: encoder.encode(list(t), batch_size=512),
        config=SearchConfig(candidates=64, beam_width=1, max_words=8, refine_sweeps=0),
    ).fit(tokenizer_words(encoder.model.tokenizer.get_vocab().keys()))
    # Execute
    scores = score_texts(texts, inverter.invert(encoder.encode(texts)))
    # Assert: measured 0.58 on 10 queries with 128 candidates; a broken search is ~0.
    assert scores.f1 > 0.3


def test_pruning_drops_words_worth_less_than_the_threshold() -> None:
    # Prepare: a target of three words at full weight and one at half weight.
    table = np.random.default_rng(99).standard_normal((len(WORDS), DIMENSION))
    index = {w: i for i, w in enumerate(WORDS)}
    strong, faint = ["waa", "wab", "wac"], "wad"
    target = table[[index[w] for w in strong]].sum(axis=0) + 0.5 * table[index[faint]]
    config = SearchConfig(candidates=30, beam_width=1, max_words=8)
    # Execute: the same search without and with pruning at 0.05 of cosine per word
    # (removing the faint word costs about 0.016 here, a full word 0.10-0.18).
    kept, _ = OptimisationInverter(_bag_oracle, config=config).fit(WORDS).invert_one(target)
    pruned, score = (
        OptimisationInverter(_bag_oracle, config=replace(config, min_word_gain=0.05))
        .fit(WORDS)
        .invert_one(target)
    )
    # Assert: the faint word is found, then pruned; the strong words stay.
    assert faint in kept.split()
    assert sorted(pruned.split()) == sorted(strong)
    assert 0.9 < score < 0.99


def test_pruning_keeps_one_of_two_near_duplicate_words() -> None:
    # Prepare: the target holds "bat" and "bats", two near-identical words. With both
    # found, removing either costs about 0.023 of cosine; removing both costs 0.084.
    rows = _word_rows()
    shared = 0.25 * np.random.default_rng(5).standard_normal(DIMENSION)
    apart = 0.05 * np.random.default_rng(6).standard_normal(DIMENSION)
    rows["bat"], rows["bats"] = shared + apart, shared - apart
    oracle = _sum_oracle(rows)
    target = oracle(["waa wab bat bats"])[0]
    config = SearchConfig(candidates=len(rows), beam_width=1, max_words=6, refine_sweeps=0)
    # Execute: the search finds all four words; pruning at 0.04 per word.
    found, _ = OptimisationInverter(oracle, config=config).fit(list(rows)).invert_one(target)
    pruned, score = (
        OptimisationInverter(oracle, config=replace(config, min_word_gain=0.04))
        .fit(list(rows))
        .invert_one(target)
    )
    # Assert: one near-duplicate is dropped and the other stays.
    assert sorted(found.split()) == ["bat", "bats", "waa", "wab"]
    assert len(pruned.split()) == 3
    assert {"waa", "wab"} < set(pruned.split())
    assert 0.97 < score < 0.99


def test_search_config_refuses_a_bad_pruning_threshold() -> None:
    with pytest.raises(ValueError, match="min_word_gain"):
        SearchConfig(min_word_gain=-0.1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("rare_word_cost", -0.01),
        ("rare_word_cost", 1.0),
        ("form_prior", -0.01),
        ("form_prior", 2.0),
        ("rare_word_zipf", -1.0),
        ("rare_word_zipf", 9.0),
    ],
)
def test_search_config_refuses_a_bad_frequency_prior(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        SearchConfig(**{field: value})


def test_rare_word_cost_prunes_a_publicly_rare_word_of_the_same_worth() -> None:
    # Prepare: three strong words plus two faint ones at half weight: "protein" (public
    # Zipf frequency 4.5) and "coshocton" (a town in Ohio, 2.0). Removing either faint
    # word costs about 0.01 of cosine.
    assert zipf_frequency("protein") > 3.5 > 2.5 > zipf_frequency("coshocton")
    rows = _word_rows()
    rows["protein"] = np.random.default_rng(7).standard_normal(DIMENSION)
    rows["coshocton"] = np.random.default_rng(8).standard_normal(DIMENSION)
    oracle = _sum_oracle(rows)
    vocabulary = [*WORDS, "protein", "coshocton"]
    target = oracle(["waa wab wac"])[0] + 0.5 * (rows["protein"] + rows["coshocton"])
    config = SearchConfig(candidates=10, beam_width=1, max_words=8, min_word_gain=0.005)
    # Execute: plain pruning at 0.005, then with 0.02 more per Zipf unit below 3.5
    # (a threshold of about 0.035 for "coshocton", still 0.005 for "protein").
    plain, _ = OptimisationInverter(oracle, config=config).fit(vocabulary).invert_one(target)
    priced, _ = (
        OptimisationInverter(oracle, config=replace(config, rare_word_cost=0.02))
        .fit(vocabulary)
        .invert_one(target)
    )
    # Assert: both faint words survive plain pruning; the rare one alone goes.
    assert sorted(plain.split()) == ["coshocton", "protein", "waa", "wab", "wac"]
    assert sorted(priced.split()) == ["protein", "waa", "wab", "wac"]


def test_form_prior_prefers_the_common_form_when_the_cosines_nearly_tie() -> None:
    # Prepare: the target holds "protein" plus a little of a direction that "proteins"
    # adds, so "proteins" scores about 0.003 of cosine higher. The prior of 0.02 per Zipf
    # unit is worth 0.0086 for "protein" (Zipf 4.53 against 4.10).
    rows = _word_rows()
    rows["protein"] = np.random.default_rng(7).standard_normal(DIMENSION)
    piece = 0.3 * np.random.default_rng(8).standard_normal(DIMENSION)
    rows["proteins"] = rows["protein"] + piece
    oracle = _sum_oracle(rows)
    vocabulary = [*WORDS, "protein", "proteins"]
    target = oracle(["protein waa wab"])[0] + 0.55 * piece
    config = SearchConfig(candidates=6, beam_width=1, max_words=3, refine_sweeps=0, word_forms=True)
    # Execute
    plain, plain_score = (
        OptimisationInverter(oracle, config=config).fit(vocabulary).invert_one(target)
    )
    chosen, score = (
        OptimisationInverter(oracle, config=replace(config, form_prior=0.02))
        .fit(vocabulary)
        .invert_one(target)
    )
    # Assert: best cosine takes the derived form; the prior gives back the common one,
    # at a small cost in cosine.
    assert sorted(plain.split()) == ["proteins", "waa", "wab"]
    assert sorted(chosen.split()) == ["protein", "waa", "wab"]
    assert (
        0.0 < plain_score - score < 0.02 * (zipf_frequency("protein") - zipf_frequency("proteins"))
    )


def test_residual_rounds_find_words_the_first_shortlist_missed() -> None:
    # Prepare: eight-word targets, but a first shortlist of only four words, so the
    # plain search can recover at most half of each target.
    rng = np.random.default_rng(6)
    targets = [" ".join(rng.choice(WORDS, size=8, replace=False)) for _ in range(6)]
    config = SearchConfig(candidates=4, beam_width=1, max_words=10, refine_sweeps=1)
    plain = OptimisationInverter(_bag_oracle, config=config).fit(WORDS)
    residual = OptimisationInverter(
        _bag_oracle,
        config=replace(config, residual_rounds=3, residual_candidates=4, residual_words=4),
    ).fit(WORDS)
    # Execute
    before = score_texts(targets, plain.invert(_bag_oracle(targets)))
    after = score_texts(targets, residual.invert(_bag_oracle(targets)))
    # Assert: what the found words leave unexplained ranks the missing words first.
    assert before.recall <= 0.5
    assert after.recall >= 0.9
    assert after.precision >= 0.9


def test_residual_rounds_stop_when_the_target_is_explained() -> None:
    # Prepare: a target the first shortlist already covers exactly.
    target_words = ["waa", "wab", "wac"]
    config = SearchConfig(candidates=12, beam_width=1, max_words=6)
    inverter = OptimisationInverter(
        _bag_oracle, config=replace(config, residual_rounds=2, residual_candidates=5)
    ).fit(WORDS)
    # Execute
    text, score = inverter.invert_one(_bag_oracle([" ".join(target_words)])[0])
    # Assert: nothing is appended once the residual is (numerically) zero.
    assert sorted(text.split()) == target_words
    assert score > 0.999


def test_restarts_regrow_from_a_wider_alphabet_and_keep_only_gains() -> None:
    # Prepare: an eight-word target; the vocabulary adds 60 "blend" words (two words
    # plus noise) that match pieces of targets. The first shortlist of 20 words holds
    # six of the eight target words.
    rows = _word_rows()
    rng = np.random.default_rng(11)
    for j in range(60):
        first, second = rng.choice(WORDS, size=2, replace=False)
        rows[f"blend{j}"] = rows[first] + rows[second] + 0.7 * rng.standard_normal(DIMENSION)
    oracle = _sum_oracle(rows)
    target_words = ["wep", "wag", "wcy", "wco", "wax", "wbf", "wbk", "wcl"]
    target = oracle([" ".join(target_words)])[0]
    config = SearchConfig(
        candidates=20, beam_width=1, max_words=10, refine_sweeps=1, min_word_gain=0.01
    )
    # Execute: the same search without and with three restarts of two words each.
    plain, plain_score = (
        OptimisationInverter(oracle, config=config).fit(list(rows)).invert_one(target)
    )
    restarted, score = (
        OptimisationInverter(
            oracle, config=replace(config, restarts=3, restart_words=2, restart_candidates=40)
        )
        .fit(list(rows))
        .invert_one(target)
    )
    # Assert: the restarts find more of the target's words, no wrong ones, a higher cosine.
    assert len(set(plain.split()) & set(target_words)) == 6
    assert len(set(restarted.split()) & set(target_words)) == 7
    assert set(restarted.split()) <= set(target_words)
    assert score > plain_score + 0.05


def test_word_forms_swap_a_found_word_for_the_form_the_target_holds() -> None:
    # Prepare: the target holds "cells"; "cell" is "cells" plus a piece of the other two
    # words, so it alone looks closer to the target and the greedy search takes it first.
    vocabulary = [*WORDS, "cell", "cells"]
    rows = _word_rows()
    rows["cells"] = np.random.default_rng(7).standard_normal(DIMENSION)
    rows["cell"] = rows["cells"] + 0.3 * (rows["waa"] + rows["wab"])
    oracle = _sum_oracle(rows)
    target = oracle(["cells waa wab"])[0]
    config = SearchConfig(candidates=6, beam_width=1, max_words=3, refine_sweeps=0)
    # Execute
    plain, _ = OptimisationInverter(oracle, config=config).fit(vocabulary).invert_one(target)
    swapped, score = (
        OptimisationInverter(oracle, config=replace(config, word_forms=True))
        .fit(vocabulary)
        .invert_one(target)
    )
    # Assert: without the sweep the wrong form stays; with it the text is exact.
    assert "cell" in plain.split()
    assert sorted(swapped.split()) == ["cells", "waa", "wab"]
    assert score > 0.999


def test_every_shortlist_ends_with_the_function_words_it_lacks() -> None:
    # Prepare: function words join the vocabulary; the oracle embeds them like any word.
    rows = {**_word_rows(), **dict(zip(["the", "of", "is"], 8 * np.eye(3, DIMENSION), strict=True))}
    oracle = _sum_oracle(rows)
    vocabulary = [*WORDS, "the", "of", "is"]
    config = SearchConfig(candidates=4, scaffold_words=2)
    scaffolded = OptimisationInverter(oracle, config=config).fit(vocabulary)
    plain = OptimisationInverter(oracle, config=replace(config, scaffold_words=0)).fit(vocabulary)
    target = oracle(["waa wab wac of"])[0]
    # Execute
    words = scaffolded.shortlist(target)
    # Assert: the 4 most relevant words, then the 2 most frequent function words
    # ("the", "of") less any already shortlisted ("of").
    assert words[:4] == plain.shortlist(target)
    assert "of" in words[:4]
    assert words[4:] == ["the"]
