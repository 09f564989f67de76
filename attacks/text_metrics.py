"""Text-recovery metrics of embedding-inversion attacks.

Metrics follow Song and Raghunathan, "Information Leakage in Embedding Models" (ACM CCS
2020): precision, recall and F1 of the recovered *content* words (a set, stopwords
excluded), here averaged per text (macro); plus exact match, sentence-level BLEU-4 (Papineni
et al., ACL 2002) with Chen and Cherry's smoothing method 1 ("A Systematic Comparison of
Smoothing Techniques for Sentence-Level BLEU", WMT 2014: a zero n-gram match count becomes
``epsilon = 0.1``), and the recovery rate of numbers and of capitalised words (names).

Tokens are maximal runs of letters, or numbers (digits with inner ``.``/``,``), compared
lowercased. Content words are tokens of two or more characters (or any number) outside
scikit-learn's English stopword list (318 words). A capitalised word is a token that starts
with an upper-case letter, is not the text's first token and is not a stopword ("I");
it counts as recovered when its lowercased form is among the prediction's tokens (the
bag-of-words attack predicts lowercase words). Numbers must match exactly.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # type: ignore[import-untyped,unused-ignore]

from attacks.base import AttackReport

__all__ = [
    "BLEU_EPSILON",
    "BLEU_MAX_ORDER",
    "STOPWORDS",
    "Inverter",
    "TextScores",
    "capitalised_words",
    "content_words",
    "inversion_report",
    "number_tokens",
    "score_texts",
    "sentence_bleu",
    "token_prf",
    "tokenize",
]

STOPWORDS: frozenset[str] = frozenset(ENGLISH_STOP_WORDS)
BLEU_MAX_ORDER = 4
BLEU_EPSILON = 0.1
MIN_WORD_CHARS = 2
_TOKEN = re.compile(r"\d+(?:[.,]\d+)*|[^\W\d_]+")
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def tokenize(text: str) -> list[str]:
    """Tokens of ``text`` in order, case kept (letter runs and numbers)."""
    return _TOKEN.findall(text)


def _is_number(token: str) -> bool:
    return _NUMBER.fullmatch(token) is not None


def content_words(text: str) -> set[str]:
    """The set of lowercased content words of ``text`` (stopwords and 1-letter words out)."""
    words = set()
    for token in tokenize(text):
        lower = token.lower()
        if _is_number(token) or (len(lower) >= MIN_WORD_CHARS and lower not in STOPWORDS):
            words.add(lower)
    return words


def number_tokens(text: str) -> list[str]:
    """The numbers of ``text``, in order, repeats kept."""
    return [token for token in tokenize(text) if _is_number(token)]


def capitalised_words(text: str) -> list[str]:
    """Capitalised non-initial, non-stopword tokens of ``text`` (likely names), lowercased."""
    tokens = tokenize(text)
    return [
        token.lower()
        for token in tokens[1:]
        if token[0].isupper() and token.lower() not in STOPWORDS and not _is_number(token)
    ]


def token_prf(reference: str, prediction: str) -> tuple[float, float, float]:
    """Precision, recall and F1 of the prediction's content words against the reference's.

    Args:
        reference: The true text.
        prediction: The recovered text (or space-joined recovered words).

    Returns:
        ``(precision, recall, f1)``; precision is 0 for an empty prediction, recall is 1 for
        a reference without content words only when the prediction is empty too.
    """
    truth, guess = content_words(reference), content_words(prediction)
    if not truth and not guess:
        return 1.0, 1.0, 1.0
    hits = len(truth & guess)
    precision = hits / len(guess) if guess else 0.0
    recall = hits / len(truth) if truth else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return precision, recall, f1


def _ngrams(tokens: Sequence[str], order: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(tokens[i : i + order]) for i in range(len(tokens) - order + 1))


def sentence_bleu(reference: str, prediction: str, *, max_order: int = BLEU_MAX_ORDER) -> float:
    """Sentence-level BLEU with uniform weights and smoothing method 1 (epsilon 0.1).

    Lowercased tokens of :func:`tokenize`, stopwords kept. An order with no candidate
    n-gram at all (prediction shorter than the order) contributes ``epsilon / 1``.

    Args:
        reference: The true text.
        prediction: The recovered text.
        max_order: The largest n-gram order (4 for BLEU-4).

    Returns:
        BLEU in ``[0, 1]``; 0 for an empty prediction.
    """
    ref = [t.lower() for t in tokenize(reference)]
    hyp = [t.lower() for t in tokenize(prediction)]
    if not hyp or not ref:
        return 0.0
    log_precision = 0.0
    for order in range(1, max_order + 1):
        candidate, truth = _ngrams(hyp, order), _ngrams(ref, order)
        total = max(sum(candidate.values()), 1)
        matched = sum(min(count, truth[gram]) for gram, count in candidate.items())
        log_precision += math.log((matched if matched else BLEU_EPSILON) / total) / max_order
    penalty = 1.0 if len(hyp) > len(ref) else math.exp(1.0 - len(ref) / len(hyp))
    return penalty * math.exp(log_precision)


@dataclass(frozen=True)
class TextScores:
    """Mean recovery metrics over a set of texts.

    Attributes:
        precision: Mean content-word precision (per text, then averaged).
        recall: Mean content-word recall.
        f1: Mean content-word F1.
        exact_match: Share of texts whose lowercased token sequence is recovered exactly.
        bleu: Mean sentence-level BLEU-4 (smoothing method 1).
        number_recovery: Recovered numbers / numbers in the references (NaN if none).
        name_recovery: Recovered capitalised words / capitalised words (NaN if none).
        numbers: How many numbers the references hold.
        names: How many capitalised words the references hold.
        texts: How many texts were scored.
    """

    precision: float
    recall: float
    f1: float
    exact_match: float
    bleu: float
    number_recovery: float
    name_recovery: float
    numbers: int
    names: int
    texts: int

    def as_metrics(self) -> dict[str, float]:
        """The scores as an :class:`attacks.base.AttackReport` metrics dictionary."""
        return {
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "exact_match": self.exact_match,
            "bleu": self.bleu,
            "number_recovery": self.number_recovery,
            "name_recovery": self.name_recovery,
            "numbers": float(self.numbers),
            "names": float(self.names),
            "texts": float(self.texts),
        }


def score_texts(references: Sequence[str], predictions: Sequence[str]) -> TextScores:
    """Score recovered texts against the true ones (aligned, same length).

    Raises:
        ValueError: The sequences differ in length or are empty.
    """
    if len(references) != len(predictions) or not references:
        raise ValueError(
            f"need equally many references and predictions, got {len(references)} "
            f"and {len(predictions)}"
        )
    sums = [0.0, 0.0, 0.0]
    exact = bleu = 0.0
    numbers = names = numbers_hit = names_hit = 0
    for reference, prediction in zip(references, predictions, strict=True):
        for i, value in enumerate(token_prf(reference, prediction)):
            sums[i] += value
        ref_tokens = [t.lower() for t in tokenize(reference)]
        hyp_tokens = [t.lower() for t in tokenize(prediction)]
        exact += float(ref_tokens == hyp_tokens)
        bleu += sentence_bleu(reference, prediction)
        guessed = set(hyp_tokens)
        reference_numbers = number_tokens(reference)
        numbers += len(reference_numbers)
        numbers_hit += sum(number in guessed for number in reference_numbers)
        reference_names = capitalised_words(reference)
        names += len(reference_names)
        names_hit += sum(name in guessed for name in reference_names)
    count = len(references)
    return TextScores(
        precision=sums[0] / count,
        recall=sums[1] / count,
        f1=sums[2] / count,
        exact_match=exact / count,
        bleu=bleu / count,
        number_recovery=numbers_hit / numbers if numbers else math.nan,
        name_recovery=names_hit / names if names else math.nan,
        numbers=numbers,
        names=names,
        texts=count,
    )


class Inverter(Protocol):
    """What a fitted inversion attack offers: invert target vectors.

    How an attack is fitted differs (public text and vectors, or a vocabulary and an
    encoder oracle), so fitting is not part of the protocol.
    """

    def invert(self, vectors: np.ndarray) -> list[str]:
        """The recovered text of each target vector."""
        ...


def inversion_report(
    attack: str,
    inverter: Inverter,
    references: Sequence[str],
    vectors: np.ndarray,
    *,
    target: str,
    threat_model: str,
    fit_seconds: float = 0.0,
    details: dict[str, Any] | None = None,
) -> AttackReport:
    """Invert ``vectors`` with a fitted inverter and score against the true texts.

    Args:
        attack: The attack's name.
        inverter: A fitted inverter.
        references: The true texts of ``vectors``.
        vectors: The target embeddings as the attacker sees them.
        target: The report's target label.
        threat_model: The attacker, in words.
        fit_seconds: Time spent fitting, added to the report's seconds.
        details: Extra details for the report.

    Returns:
        The :meth:`TextScores.as_metrics` metrics of the recovered texts.
    """
    started = time.perf_counter()
    predictions = inverter.invert(vectors)
    scores = score_texts(references, predictions)
    return AttackReport(
        attack=attack,
        target=target,
        threat_model=threat_model,
        metrics=scores.as_metrics(),
        seconds=fit_seconds + time.perf_counter() - started,
        details=dict(details or {}),
    )
