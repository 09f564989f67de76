"""The inversion attacker's alphabet: word forms grouped by Snowball (Porter2) stem."""

from __future__ import annotations

from attacks.inversion_vocabulary import WordForms


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
