"""The inversion attacker's alphabet: tokenizer and public words, and word forms grouped
by Snowball (Porter2) stem."""

from __future__ import annotations

from attacks.inversion_vocabulary import (
    WordForms,
    frequent_words,
    function_words,
    tokenizer_words,
    zipf_frequency,
)


def test_word_forms_group_inflections_and_derivations_by_stem() -> None:
    # Prepare
    vocabulary = ["transplant", "transplants", "transplantation", "cell", "cells", "visual"]
    # Execute
    forms = WordForms(vocabulary)
    # Assert: Porter2 stems "transplantation" and "transplants" to "transplant".
    assert sorted(forms.variants("transplants")) == ["transplant", "transplantation"]
    assert forms.variants("cell") == ["cells"]
    assert forms.variants("visual") == []
    assert len(forms) == 3


def test_word_forms_of_a_word_outside_the_vocabulary_are_empty() -> None:
    forms = WordForms(["cell", "cells"])
    assert forms.variants("cellular") == []
    assert forms.variants("") == []


def test_tokenizer_words_keeps_whole_words_and_adds_public_words() -> None:
    # Prepare
    vocab = ["[CLS]", "[unused3]", "##ing", "card", "top", "it's", "42", "Ünï"]
    # Execute
    words = tokenizer_words(vocab, ["Refund my ATM fee"])
    # Assert
    assert words == sorted({"card", "top", "42", "refund", "my", "atm", "fee"})


def test_frequent_words_keep_scientific_terms_and_drop_rare_forms() -> None:
    # Execute
    words = set(frequent_words(min_zipf=2.0))
    # Assert: the public list has words the tokenizer splits, and a threshold
    assert {"hematopoietic", "biomaterials", "chromosomes", "refund"} <= words
    assert "marrowskying" not in words
    assert "Refund" not in words
    assert 50_000 < len(words) < 150_000
    assert len(frequent_words(min_zipf=3.0)) < len(words)


def test_function_words_are_the_vocabularys_most_frequent_stopwords() -> None:
    # Prepare: "a" is one letter, "cell" is a content word, "zebra" is not a stopword.
    vocabulary = ["cell", "of", "a", "whereupon", "the", "is", "zebra"]
    # Execute / Assert: by public word frequency, most frequent first.
    assert function_words(vocabulary, 3) == ["the", "of", "is"]
    assert function_words(vocabulary, 10) == ["the", "of", "is", "whereupon"]
    assert function_words(vocabulary, 0) == []


def test_zipf_frequency_ranks_base_forms_above_rare_names_and_unknowns_at_zero() -> None:
    # Execute
    values = {w: zipf_frequency(w) for w in ("the", "protein", "proteins", "coshocton", "qzxv")}
    # Assert: wordfreq's published values (log10 uses per billion words), rounded.
    assert values["the"] > 7.5
    assert values["protein"] > values["proteins"] > 3.5
    assert 1.5 < values["coshocton"] < 2.5
    assert values["qzxv"] == 0.0
