"""A learned map from a sentence embedding to the words it likely contains.

The optimisation attack (:mod:`attacks.optimisation_inversion`) searches only among a
shortlist of words, ranked by how close each word's own embedding is to the target. A
sentence embedding is not the nearest neighbour of its words, though: on SciFact claims
only 39% of the content words rank in the top 128 of 90,000 by that cosine. This module
learns a bilinear relevance ``score(word | target) = (target @ M) . embedding(word)`` on
public sentences, a multi-label softmax over the vocabulary in the manner of the
bag-of-words inverter of Song and Raghunathan, "Information Leakage in Embedding Models"
(ACM CCS 2020), except that the output side is the encoder's own embedding of each word.
So ``M`` (one ``d x d`` matrix, started at the identity) generalises to words that no
public sentence contains, such as the scientific terms of the targets.

Training uses sampled softmax: each batch scores the batch's true words plus
``negatives`` random vocabulary words. A few epochs suffice; more fit the public domain
and rank out-of-domain words worse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from attacks.bow_inversion import unit_rows
from attacks.text_metrics import content_words

__all__ = ["WordRelevanceMap"]

logger = logging.getLogger(__name__)

INITIAL_SCALE = 20.0  # softmax temperature at start (cosines live in [-1, 1])


class WordRelevanceMap:
    """Fit ``M`` so that ``(target @ M) . word_vector`` ranks a sentence's own words first.

    Args:
        epochs: Passes over the public sentences.
        batch_size: Sentences per step.
        negatives: Random vocabulary words scored per batch besides the batch's own.
        learning_rate: Adam step size.
        seed: Seed of the sampling and the batch order.
    """

    def __init__(
        self,
        *,
        epochs: int = 3,
        batch_size: int = 256,
        negatives: int = 8192,
        learning_rate: float = 1e-3,
        seed: int = 0,
    ) -> None:
        for name, value in (
            ("epochs", epochs),
            ("batch_size", batch_size),
            ("negatives", negatives),
        ):
            if value < 1:
                raise ValueError(f"WordRelevanceMap: {name} must be >= 1, got {value}")
        if not learning_rate > 0:
            raise ValueError(f"WordRelevanceMap: learning_rate must be > 0, got {learning_rate}")
        self.epochs, self.batch_size, self.negatives = epochs, batch_size, negatives
        self.learning_rate, self.seed = learning_rate, seed
        self.matrix: NDArray[np.float32] | None = None

    def fit(
        self,
        public_texts: Sequence[str],
        public_vectors: np.ndarray,
        vocabulary: Sequence[str],
        word_vectors: np.ndarray,
        *,
        progress: Callable[[int, int], None] | None = None,
    ) -> WordRelevanceMap:
        """Learn ``M`` from public sentences and their embeddings.

        Args:
            public_texts: The attacker's public sentences.
            public_vectors: Their embeddings, one row per sentence.
            vocabulary: The search's words (as given to the optimisation attack).
            word_vectors: Each word's own embedding, one row per word.
            progress: Called as ``progress(done, total)`` after each batch.

        Returns:
            ``self``.
        """
        if len(public_texts) != len(public_vectors) or len(vocabulary) != len(word_vectors):
            raise ValueError(
                "WordRelevanceMap.fit needs one vector per public text and per vocabulary word"
            )
        row = {word: i for i, word in enumerate(vocabulary)}
        labels = [
            sorted({row[w] for w in content_words(t.lower()) if w in row}) for t in public_texts
        ]
        usable = np.array([i for i, words in enumerate(labels) if words], dtype=np.int64)
        if usable.size == 0:
            raise ValueError("WordRelevanceMap.fit: no public text contains a vocabulary word")
        started = time.perf_counter()
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        sentences = torch.from_numpy(unit_rows(np.asarray(public_vectors, np.float32)))
        words = torch.from_numpy(unit_rows(np.asarray(word_vectors, np.float32)))
        dim = sentences.shape[1]
        matrix = torch.nn.Parameter(torch.eye(dim))
        scale = torch.nn.Parameter(torch.tensor(INITIAL_SCALE))
        optimiser = torch.optim.Adam([matrix, scale], lr=self.learning_rate)
        steps, done = self.epochs * -(-len(usable) // self.batch_size), 0
        for _ in range(self.epochs):
            order = usable[torch.randperm(len(usable), generator=generator).numpy()]
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                positives = np.concatenate([labels[i] for i in batch])
                candidates = np.unique(
                    np.concatenate([positives, rng.integers(0, len(vocabulary), self.negatives)])
                )
                column = np.searchsorted(candidates, positives)
                owner = np.repeat(np.arange(len(batch)), [len(labels[i]) for i in batch])
                weight = torch.from_numpy(
                    np.repeat(
                        [1.0 / len(labels[i]) for i in batch], [len(labels[i]) for i in batch]
                    )
                ).float()
                logits = scale * (sentences[batch] @ matrix) @ words[candidates].T
                log_p = torch.log_softmax(logits, dim=1)[owner, column]
                loss: torch.Tensor = -(log_p * weight).sum() / len(batch)
                optimiser.zero_grad()
                loss.backward()  # type: ignore[no-untyped-call]
                optimiser.step()
                done += 1
                if progress is not None:
                    progress(done, steps)
        self.matrix = matrix.detach().numpy().astype(np.float32)
        logger.info(
            "word-map: fitted on %d public sentences, %d words, %d epochs in %.1f s",
            len(usable),
            len(vocabulary),
            self.epochs,
            time.perf_counter() - started,
        )
        return self

    def query(self, target: np.ndarray) -> NDArray[np.float32]:
        """The unit vector to rank vocabulary words by (dot product with their vectors)."""
        if self.matrix is None:
            raise RuntimeError("WordRelevanceMap.fit must run before query")
        mapped = np.asarray(target, dtype=np.float32) @ self.matrix
        unit: NDArray[np.float32] = unit_rows(mapped[None, :])[0]
        return unit
