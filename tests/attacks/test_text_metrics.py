"""Golden examples of the inversion metrics (hand-computed)."""

from __future__ import annotations

import math

import pytest

from attacks.text_metrics import (
    capitalised_words,
    content_words,
    number_tokens,
    score_texts,
    sentence_bleu,
    token_prf,
    tokenize,
)


def test_tokenize_keeps_numbers_whole_and_drops_symbols() -> None:
    # Prepare / Execute
    tokens = tokenize("Send £200 to John on 3.5 days, 1,000 times")
    # Assert
    assert tokens == ["Send", "200", "to", "John", "on", "3.5", "days", "1,000", "times"]


def test_content_words_drop_stopwords_and_single_letters() -> None:
    assert content_words("The cat sat on the mat, I think; a 7") == {
        "cat",
        "sat",
        "mat",
        "think",
        "7",
    }


def test_token_prf_golden() -> None:
    # truth {cat, sat, mat}; guess {cat, red, mat}: 2 hits of 3 and 3.
    precision, recall, f1 = token_prf("The cat sat on the mat", "a cat on a red mat")
    assert precision == pytest.approx(2 / 3)
    assert recall == pytest.approx(2 / 3)
    assert f1 == pytest.approx(2 / 3)


def test_token_prf_unequal_precision_recall() -> None:
    # truth {card, arrived, late, week}; guess {card, late}: P = 1, R = 1/2, F1 = 2/3.
    precision, recall, f1 = token_prf("My card arrived late this week", "late card")
    assert (precision, recall) == (1.0, 0.5)
    assert f1 == pytest.approx(2 / 3)


def test_token_prf_empty_prediction_scores_zero() -> None:
    assert token_prf("The cat sat", "") == (0.0, 0.0, 0.0)


def test_sentence_bleu_golden_no_smoothing_needed() -> None:
    # p1 = 5/6, p2 = 3/5, p3 = 2/4, p4 = 1/3, equal lengths: BLEU = (1/12) ** (1/4).
    bleu = sentence_bleu("the cat sat on the mat", "the cat sat on a mat")
    assert bleu == pytest.approx((1 / 12) ** 0.25)


def test_sentence_bleu_golden_with_smoothing_and_brevity_penalty() -> None:
    # p1 = 2/2, p2..p4 have no match -> 0.1 each; BP = exp(1 - 6/2).
    bleu = sentence_bleu("the cat sat on the mat", "cat mat")
    assert bleu == pytest.approx(math.exp(-2.0) * 0.1**0.75)


def test_sentence_bleu_identical_is_one_and_empty_is_zero() -> None:
    assert sentence_bleu("A b c d e", "a b c d e") == pytest.approx(1.0)
    assert sentence_bleu("a b c d e", "") == 0.0


def test_numbers_and_names_extraction() -> None:
    text = "John paid 15.50 to Mary Smith in Paris, I think 2 times"
    assert number_tokens(text) == ["15.50", "2"]
    assert capitalised_words(text) == [
        "mary",
        "smith",
        "paris",
    ]  # "John" is initial, "I" a stopword


def test_score_texts_golden() -> None:
    # Prepare
    references = ["Transfer 200 to John Smith", "I paid 15.50 in Paris", "Hello, world!"]
    predictions = ["transfer 200 john", "paid 15 paris", "hello world"]
    # Execute
    scores = score_texts(references, predictions)
    # Assert: numbers 200 (hit), 15.50 (miss); names John, Smith, Paris -> 2 of 3.
    assert scores.number_recovery == pytest.approx(0.5)
    assert scores.name_recovery == pytest.approx(2 / 3)
    assert (scores.numbers, scores.names, scores.texts) == (2, 3, 3)
    # F1s: {transfer,200,john,smith} vs {transfer,200,john}: 6/7; {paid,15.50,paris} vs
    # {paid,15,paris}: 2/3; {hello,world}: 1.
    assert scores.f1 == pytest.approx((6 / 7 + 2 / 3 + 1.0) / 3)
    assert scores.exact_match == pytest.approx(1 / 3)


def test_score_texts_without_numbers_reports_nan() -> None:
    scores = score_texts(["the cat"], ["cat"])
    assert math.isnan(scores.number_recovery)
    assert math.isnan(scores.name_recovery)


def test_score_texts_rejects_misaligned_input() -> None:
    with pytest.raises(ValueError, match="equally many"):
        score_texts(["a"], ["a", "b"])
