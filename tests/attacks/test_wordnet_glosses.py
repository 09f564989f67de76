"""WordNet glosses as the inversion attacker's public dictionary sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

from attacks.wordnet_glosses import check_wordnet_dir, wordnet_glosses
from embedding_core.errors import DataFormatError, DatasetNotFoundError
from tests.attacks.wordnet_files import write_wordnet


def test_glosses_are_lemmas_and_definitions_plus_examples(tmp_path: Path) -> None:
    # Prepare
    root = write_wordnet(tmp_path / "wn")
    # Execute
    texts = wordnet_glosses(root)
    # Assert: three lemmas, "_" as spaces, the adjective marker dropped, two-word
    # examples ("a cell") left out, nothing from the licence header, no duplicates.
    assert texts == [
        "hematopoiesis, haematopoiesis, hemopoiesis: the formation of blood cells in the "
        "living body (especially in the bone marrow)",
        "stem cell, precursor cell: an undifferentiated cell",
        "stem cells divide to renew themselves",
        "breathe: draw air into, and expel out of, the lungs",
        "galore: in great numbers",
    ]


def test_glosses_without_examples_keep_only_definitions(tmp_path: Path) -> None:
    root = write_wordnet(tmp_path / "wn")
    texts = wordnet_glosses(root, examples=False)
    assert len(texts) == 4
    assert all(":" in text for text in texts)


def test_a_malformed_synset_line_names_the_file_and_line(tmp_path: Path) -> None:
    # Prepare: w_cnt is not hexadecimal
    root = write_wordnet(tmp_path / "wn", noun="13492453 22 n zz blood 0 | a liquid\n")
    # Execute / Assert
    with pytest.raises(DataFormatError, match=r"data\.noun:2: not a WordNet synset line"):
        wordnet_glosses(root)


def test_a_missing_data_file_is_a_clear_error(tmp_path: Path) -> None:
    root = write_wordnet(tmp_path / "wn")
    (root / "data.adv").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"data\.adv missing.*wordnet-base"):
        wordnet_glosses(root)


def test_a_folder_without_the_data_files_is_not_a_wordnet_folder(tmp_path: Path) -> None:
    # Prepare
    root = write_wordnet(tmp_path / "wn")
    (root / "data.verb").unlink()
    # Execute / Assert
    with pytest.raises(DatasetNotFoundError, match=r"not a WordNet database folder: data\.verb"):
        check_wordnet_dir(root)
    assert check_wordnet_dir(write_wordnet(tmp_path / "full")) == tmp_path / "full"
