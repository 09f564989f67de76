"""Public dictionary text for the inversion attacker: the glosses of WordNet 3.0.

The optimisation attack's word relevance map (:mod:`attacks.word_relevance_map`) learns
which words a sentence embedding holds from the attacker's public sentences. STS-B and
BANKING77 are news, captions and banking chat: they rarely use the scientific and medical
words of a consortium's private texts, so the map ranks those words low. WordNet's
glosses are public sentences that do: about 117,000 definitions ("hematopoiesis,
haematopoiesis, hemopoiesis: the formation of blood cells in the living body") and 43,000
usage examples, over every part of speech. An attacker has them as surely as a word list.
They raised the map's recall of SciFact claim words in the top 128 from 0.51 to 0.54
(claims 0-59) and 0.49 to 0.56 (claims 100-199), but the attack's F1 only on one of
three claim sets (``benchmarks/RESULTS.md``), so the audit uses them only when asked
(``fedembed audit --wordnet DIR``).

WordNet: G. A. Miller, "WordNet: A Lexical Database for English", Communications of the
ACM 38(11), 1995; C. Fellbaum (ed.), "WordNet: An Electronic Lexical Database", MIT Press,
1998. Licence: the WordNet 3.0 licence (Princeton University), which permits use, copying
and distribution. Debian and Ubuntu install it with ``apt-get install wordnet-base``
(``/usr/share/wordnet``).

The database files (``data.noun``, ``data.verb``, ``data.adj``, ``data.adv``) hold one
synset per line: ``offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] p_cnt
[ptr...] [frames...] | gloss``, with ``w_cnt`` in hexadecimal, words joined by ``_``,
and the gloss a definition then ``"quoted"`` examples, separated by ``;``. Lines that
start with two spaces are the licence header (see ``wndb(5WN)``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from embedding_core.errors import DataFormatError, DatasetNotFoundError

__all__ = [
    "DATA_FILES",
    "check_wordnet_dir",
    "wordnet_glosses",
]

logger = logging.getLogger(__name__)

DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")
HEADER_PREFIX = "  "
GLOSS_SEPARATOR = " | "
GLOSS_PART_SEPARATOR = ";"
EXAMPLE_QUOTE = '"'
WORD_FIELD = 4  # words start at field 4: offset, lex_filenum, ss_type, w_cnt come first
LEMMAS_PER_GLOSS = 3  # "hematopoiesis, haematopoiesis, hemopoiesis: ..."
MIN_EXAMPLE_WORDS = 3
_ADJECTIVE_MARKER = re.compile(r"\([a-z]+\)$")  # data.adj: "galore(ip)"


def check_wordnet_dir(root: Path) -> Path:
    """``root`` if it holds the WordNet database files.

    Raises:
        DatasetNotFoundError: a data file is missing (named in the message).
    """
    missing = [name for name in DATA_FILES if not (Path(root) / name).is_file()]
    if missing:
        raise DatasetNotFoundError(
            f"{root} is not a WordNet database folder: {', '.join(missing)} missing",
            expected=f"a folder with {', '.join(DATA_FILES)} (WordNet 3.0 database files)",
            fix="install Debian's wordnet-base and pass /usr/share/wordnet",
        )
    return Path(root)


def wordnet_glosses(root: Path, *, examples: bool = True) -> list[str]:
    """WordNet's glosses as sentences, in file order, without duplicates.

    Each synset gives ``"lemma, lemma, lemma: definition"`` (its first
    ``LEMMAS_PER_GLOSS`` lemmas, underscores as spaces) and, with ``examples``, each
    usage example of at least ``MIN_EXAMPLE_WORDS`` words.

    Raises:
        DatasetNotFoundError: ``root`` lacks a data file.
        DataFormatError: a synset line does not follow the WordNet database format.
    """
    folder = check_wordnet_dir(root)
    texts: dict[str, None] = {}
    for name in DATA_FILES:
        path = folder / name
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if line.startswith(HEADER_PREFIX) or not line.strip():
                    continue
                for text in _synset_texts(path, number, line, examples=examples):
                    texts.setdefault(text, None)
    logger.info("wordnet: read %d gloss texts from %s", len(texts), root)
    return list(texts)


def _synset_texts(path: Path, number: int, line: str, *, examples: bool) -> list[str]:
    head, separator, gloss = line.partition(GLOSS_SEPARATOR)
    fields = head.split()
    try:
        count = int(fields[3], 16)
        lemmas = [fields[WORD_FIELD + 2 * i] for i in range(count)]
    except (IndexError, ValueError):
        raise DataFormatError(
            path,
            number,
            "not a WordNet synset line",
            expected="offset lex_filenum ss_type w_cnt(hex) word lex_id ... | gloss",
            fix="use the WordNet 3.0 database files (Debian wordnet-base), unmodified",
        ) from None
    if not separator or count == 0:
        return []
    names = [_ADJECTIVE_MARKER.sub("", lemma).replace("_", " ") for lemma in lemmas]
    parts = [part.strip() for part in gloss.strip().split(GLOSS_PART_SEPARATOR)]
    definition = "; ".join(p for p in parts if p and not p.startswith(EXAMPLE_QUOTE))
    texts = [f"{', '.join(names[:LEMMAS_PER_GLOSS])}: {definition}"] if definition else []
    if examples:
        quoted = (p.strip(EXAMPLE_QUOTE).strip() for p in parts if p.startswith(EXAMPLE_QUOTE))
        texts.extend(q for q in quoted if len(q.split()) >= MIN_EXAMPLE_WORDS)
    return texts
