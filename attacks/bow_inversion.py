"""Bag-of-words embedding inversion: a multi-label MLP from an embedding to its words.

Song and Raghunathan, "Information Leakage in Embedding Models", ACM CCS 2020, Section 4
(white-box and black-box inversion, "multi-set prediction"): the attacker queries the
encoder on public auxiliary text, trains a classifier that maps an embedding to the set of
words it came from, and applies it to the target embeddings. They report recovering 50-70%
of the input words of sentence encoders.

Here: the vocabulary is the ``vocab_size`` most frequent content words (see
:mod:`attacks.text_metrics`) of the auxiliary texts; a 2-layer MLP (Linear, ReLU, dropout,
Linear) is trained with binary cross-entropy on one label per vocabulary word; a word is
predicted when its probability passes a threshold that is tuned on a held-out tenth of the
auxiliary data (maximising mean content-word F1), at least ``min_words`` and at most
``max_words`` words per text. The input is L2-normalised first, so a scaled ciphertext
(e.g. DCPE's ``s * m + noise``) meets the inverter at the plaintext's scale.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from attacks.text_metrics import content_words, token_prf

__all__ = ["ATTACK_NAME", "BowConfig", "BowInverter", "unit_rows"]

logger = logging.getLogger(__name__)

ATTACK_NAME = "bow_inversion"
THRESHOLD_GRID = tuple(round(0.05 * i, 2) for i in range(1, 19))
_EPS = 1e-12


def unit_rows(vectors: NDArray[np.floating] | np.ndarray) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm (float32); zero rows stay zero."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    result: NDArray[np.float32] = array / np.maximum(norms, _EPS)
    return result


@dataclass(frozen=True)
class BowConfig:
    """Hyper-parameters of the bag-of-words inverter.

    Attributes:
        vocab_size: Most frequent auxiliary content words kept as labels.
        hidden: Width of the MLP's hidden layer.
        dropout: Dropout after the hidden layer.
        epochs: Passes over the auxiliary data.
        batch_size: Texts per optimiser step.
        learning_rate: Adam's learning rate.
        validation_share: Share of auxiliary texts held out to tune the threshold.
        min_words: Fewest words predicted per text (the most probable ones).
        max_words: Most words predicted per text.
        seed: Seed of the split, initialisation and batching.
    """

    vocab_size: int = 5000
    hidden: int = 512
    dropout: float = 0.3
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 1e-3
    validation_share: float = 0.1
    min_words: int = 1
    max_words: int = 20
    seed: int = 0


class BowInverter:
    """Embedding -> set of words, trained on (public text, its embedding) pairs.

    Args:
        config: Hyper-parameters; defaults follow the paper's 2-layer MLP.
    """

    def __init__(self, config: BowConfig | None = None) -> None:
        self.config = config or BowConfig()
        self.vocabulary: list[str] = []
        self.threshold = 0.5
        self._model: nn.Sequential | None = None

    def _labels(self, texts: Sequence[str]) -> list[list[int]]:
        index = {word: i for i, word in enumerate(self.vocabulary)}
        return [sorted(index[w] for w in content_words(t) if w in index) for t in texts]

    def fit(self, texts: Sequence[str], vectors: np.ndarray) -> BowInverter:
        """Build the vocabulary, train the MLP and tune the decision threshold.

        Args:
            texts: Public auxiliary texts.
            vectors: Their embeddings ``(n, d)`` as the attacker obtained them (raw, or
                protected the same way as the target for an adaptive attacker).

        Returns:
            ``self``.
        """
        cfg = self.config
        if len(texts) != len(vectors) or len(texts) < 2:
            raise ValueError(f"need >= 2 aligned texts and vectors, got {len(texts)}")
        started = time.perf_counter()
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(content_words(text))
        self.vocabulary = [word for word, _ in counts.most_common(cfg.vocab_size)]
        labels = self._labels(texts)
        inputs = torch.from_numpy(unit_rows(vectors))
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(len(texts))
        held = max(1, round(cfg.validation_share * len(texts)))
        valid, train = order[:held], order[held:]
        torch.manual_seed(cfg.seed)
        model = nn.Sequential(
            nn.Linear(inputs.shape[1], cfg.hidden),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.hidden, len(self.vocabulary)),
        )
        optimiser = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
        loss_fn = nn.BCEWithLogitsLoss()
        for epoch in range(cfg.epochs):
            model.train()
            total = 0.0
            shuffled = train[rng.permutation(len(train))]
            for start in range(0, len(shuffled), cfg.batch_size):
                chunk = shuffled[start : start + cfg.batch_size]
                target = torch.zeros((len(chunk), len(self.vocabulary)))
                for r, row in enumerate(chunk):
                    target[r, labels[row]] = 1.0
                optimiser.zero_grad()
                loss = loss_fn(model(inputs[chunk]), target)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(chunk)
            logger.debug("bow: epoch %d loss %.5f", epoch + 1, total / max(len(train), 1))
        model.eval()
        self._model = model
        self.threshold = self._tune([texts[i] for i in valid], inputs[valid].numpy())
        logger.info(
            "bow: fitted vocab=%d texts=%d threshold=%.2f in %.1f s",
            len(self.vocabulary),
            len(train),
            self.threshold,
            time.perf_counter() - started,
        )
        return self

    def probabilities(self, vectors: np.ndarray) -> NDArray[np.float32]:
        """Per-word probabilities ``(n, vocab)`` of the (L2-normalised) vectors."""
        if self._model is None:
            raise RuntimeError("BowInverter.fit must run before inversion")
        with torch.no_grad():
            logits = self._model(torch.from_numpy(unit_rows(vectors)))
        result: NDArray[np.float32] = torch.sigmoid(logits).numpy()
        return result

    def _decide(self, probabilities: NDArray[np.float32], threshold: float) -> list[list[str]]:
        cfg = self.config
        order = np.argsort(-probabilities, axis=1)[:, : cfg.max_words]
        words = []
        for row, ranked in zip(probabilities, order, strict=True):
            keep = [j for k, j in enumerate(ranked) if k < cfg.min_words or row[j] >= threshold]
            words.append([self.vocabulary[j] for j in keep])
        return words

    def _tune(self, texts: Sequence[str], vectors: np.ndarray) -> float:
        probabilities = self.probabilities(vectors)
        best, best_f1 = 0.5, -1.0
        for threshold in THRESHOLD_GRID:
            guesses = self._decide(probabilities, threshold)
            f1 = float(
                np.mean([token_prf(t, " ".join(g))[2] for t, g in zip(texts, guesses, strict=True)])
            )
            if f1 > best_f1:
                best, best_f1 = threshold, f1
        return best

    def predict_words(self, vectors: np.ndarray) -> list[list[str]]:
        """The recovered words of each vector, most probable first."""
        return self._decide(self.probabilities(vectors), self.threshold)

    def invert(self, vectors: np.ndarray) -> list[str]:
        """The recovered words of each vector joined by spaces (no word order)."""
        return [" ".join(words) for words in self.predict_words(vectors)]
