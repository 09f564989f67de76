"""The inversion attacker's alphabet: which words it may produce, and their other forms.

* :func:`tokenizer_words`: the whole words of the encoder's WordPiece vocabulary (known
  to anyone who holds the encoder) plus the words of public texts.
* :func:`frequent_words`: the public ``wordfreq`` list above a Zipf frequency.
* :func:`function_words`: the most frequent stopwords, which every shortlist holds: the
  content-word metrics ignore them, and they let the search match a sentence's grammar
  with "the" and "of" instead of with false content words.
* :func:`zipf_frequency`: a word's public ``wordfreq`` frequency, the prior by which the
  search prefers common words and common forms to rare fragments.
* :class:`WordForms`: the vocabulary grouped by word stem, so a search that found
  "transplants" can also try "transplantation". Stems come from the Snowball English
  (Porter2) stemmer: M. F. Porter, "Snowball: A language for stemming algorithms" (2001),
  the successor of Porter, "An algorithm for suffix stripping", Program 14(3), 1980.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from functools import lru_cache

__all__ = [
    "FREQUENT_MIN_ZIPF",
    "WORDFREQ_LIST",
    "WordForms",
    "frequent_words",
    "function_words",
    "tokenizer_words",
    "zipf_frequency",
]

_WORD = re.compile(r"^(?:[a-z]+|\d+)$")
_WORD_IN_TEXT = re.compile(r"[a-z]+|\d+")
_SPECIAL = re.compile(r"^\[.*\]$")
WORDFREQ_LIST = "large"
FREQUENT_MIN_ZIPF = 2.0
STEMMER_LANGUAGE = "english"


def frequent_words(*, min_zipf: float = FREQUENT_MIN_ZIPF, language: str = "en") -> list[str]:
    """Public words at least as frequent as ``min_zipf`` in the ``wordfreq`` lists.

    ``wordfreq`` (Speer, 2022; data from Wikipedia, subtitles, news, books, web text and
    social media) gives a word's Zipf frequency, log10 of its uses per billion words.
    Its "large" English list has about 290,000 letter words and numbers; ``min_zipf``
    2.0 keeps about 90,000 of them, enough for most scientific vocabulary
    ("hematopoietic" 2.5, "biomaterials" 2.4) without the rare forms that only add
    false matches. A whole word the encoder's tokenizer splits into pieces can only be
    produced by the search if it is in the vocabulary. Sorted, lowercased.
    """
    from wordfreq import iter_wordlist, zipf_frequency  # deferred: only full audits use it

    return sorted(
        word
        for word in iter_wordlist(language, wordlist=WORDFREQ_LIST)
        if _WORD.match(word) and zipf_frequency(word, language, wordlist=WORDFREQ_LIST) >= min_zipf
    )


@lru_cache(maxsize=200_000)
def zipf_frequency(word: str, language: str = "en") -> float:
    """``word``'s public Zipf frequency: log10 of its uses per billion words (0 if unknown).

    From the ``wordfreq`` "large" list, as :func:`frequent_words`: "the" 7.7, "protein"
    4.5, "proteins" 4.1, "coshocton" (a town in Ohio) 2.0.
    """
    from wordfreq import zipf_frequency as wordfreq_zipf  # deferred: only full audits use it

    return float(wordfreq_zipf(word, language, wordlist=WORDFREQ_LIST))


def function_words(vocabulary: Iterable[str], count: int, *, language: str = "en") -> list[str]:
    """The ``count`` most frequent stopwords of ``vocabulary`` ("the", "to", "and", ...).

    Stopwords are the content-word metrics' list (:data:`attacks.text_metrics.STOPWORDS`,
    scikit-learn's English list), without one-letter words; frequency is the public
    ``wordfreq`` Zipf frequency, ties broken alphabetically.
    """
    from attacks.text_metrics import STOPWORDS

    words = {w for w in vocabulary if w in STOPWORDS and len(w) > 1}
    ranked = sorted(words, key=lambda w: (-zipf_frequency(w, language), w))
    return ranked[:count]


def tokenizer_words(vocab: Iterable[str], public_texts: Iterable[str] = ()) -> list[str]:
    """The attacker's vocabulary: whole words of a WordPiece vocabulary plus public words.

    Sub-word pieces (``##ing``), special tokens (``[CLS]``, ``[unused0]``) and tokens with
    punctuation are dropped; words of ``public_texts`` (lowercased letter runs and numbers)
    are added. Sorted, no duplicates.
    """
    words = {token for token in vocab if _WORD.match(token) and not _SPECIAL.match(token)}
    for text in public_texts:
        words.update(_WORD_IN_TEXT.findall(text.lower()))
    return sorted(words)


class WordForms:
    """A vocabulary grouped by stem: each word's other forms within the vocabulary.

    Args:
        vocabulary: The attacker's words (lowercase).
    """

    def __init__(self, vocabulary: Sequence[str]) -> None:
        import snowballstemmer  # type: ignore[import-untyped]

        stemmer = snowballstemmer.stemmer(STEMMER_LANGUAGE)
        self._stem: dict[str, str] = dict(
            zip(vocabulary, stemmer.stemWords(list(vocabulary)), strict=True)
        )
        groups: defaultdict[str, list[str]] = defaultdict(list)
        for word, stem in self._stem.items():
            groups[stem].append(word)
        self._groups = dict(groups)

    def variants(self, word: str) -> list[str]:
        """The vocabulary's other words with ``word``'s stem (empty for unknown words)."""
        stem = self._stem.get(word)
        if stem is None:
            return []
        return [other for other in self._groups[stem] if other != word]

    def __len__(self) -> int:
        """Number of distinct stems."""
        return len(self._groups)
