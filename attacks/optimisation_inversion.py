"""Optimisation-based embedding inversion: search word sequences through the encoder.

The attacker knows the encoder and may query it as a black box (an oracle from texts to
embeddings). For each target embedding it searches for a word sequence whose embedding is
as cosine-similar to the target as possible, in the spirit of the discrete-optimisation
attacks of Song and Raghunathan, "Information Leakage in Embedding Models" (ACM CCS 2020)
and of the iterative correction of vec2text, Morris et al., "Text Embeddings Reveal
(Almost) As Much As Text" (EMNLP 2023), without a trained generator:

1. *Shortlist.* Every word of the attacker's vocabulary (the encoder tokenizer's whole
   words, which the attacker knows with the encoder, plus words of public text and,
   optionally, the public word-frequency list of
   :func:`attacks.inversion_vocabulary.frequent_words`) is embedded once
   on its own; per target, the ``candidates`` words whose own embedding is closest to the
   target are kept.
2. *Beam search.* Starting from the empty text, each step appends one shortlisted word to
   each of the ``beam_width`` best sequences, embeds all extensions with the oracle in one
   batch and keeps the best; the search stops when no extension improves the similarity or
   at ``max_words``.
3. *Refinement.* Coordinate ascent over positions: replace a word by any shortlisted word,
   or delete it, whenever that raises the similarity, for ``refine_sweeps`` sweeps.
4. *Residual rounds.* The part of the target that the text found so far does not
   explain, ``target - (target . e) e`` for the found text's embedding ``e``, ranks
   ``residual_candidates`` further words, which the search then appends greedily and
   swaps in, as matching pursuit picks its next atom by the residual (Mallat and
   Zhang, "Matching Pursuits with Time-Frequency Dictionaries", IEEE TSP 1993). Rare
   words that the whole target ranks too low come up once the common ones are found.
5. *Word forms.* Each found word is swapped for the form of it (same stem, e.g.
   "transplants" / "transplantation") that raises the similarity most, if any does
   (:class:`attacks.inversion_vocabulary.WordForms`). The shortlists often hold another
   form of a word than the one the text used.
6. *Pruning.* While some word's removal lowers the similarity by less than
   ``min_word_gain``, the least useful one is dropped (the search's filler words that
   match a piece of the target), one at a time so that one of two near-duplicates stays.
   With ``rare_word_cost`` a word rarer than ``rare_word_zipf`` in public text must be
   worth that much more cosine per Zipf unit below it: rare names and fragments
   ("coshocton", "venizelos") are chosen because their word pieces match pieces of a
   target word the vocabulary lacks, and are seldom right.
7. *Form choice.* With ``form_prior`` each kept word finally takes the form (same stem)
   that maximises ``similarity + form_prior x Zipf frequency``, and pruning runs again.
   In a bag of words without grammar the encoder tends to prefer a derived form
   ("proteins", "adversely") by a few thousandths of cosine over the form the text
   used; a public frequency prior, the language-model term of noisy-channel decoding
   (Brown et al., "A Statistical Approach to Machine Translation", Computational
   Linguistics 1990), undoes that bias.
8. *Restarts.* Iterated local search (Lourenco, Martin and Stuetzle, "Iterated Local
   Search", Handbook of Metaheuristics 2003): drop the ``restart_words`` least useful
   words, regrow and refine from the shortlist plus the ``restart_candidates`` most
   relevant words, and keep the new text if its similarity is higher. Greedy search
   takes words that match pieces of several target words ("anticompetitive" for
   "anti"); once they are dropped, the words they stood for can come in.

With a :class:`attacks.word_relevance_map.WordRelevanceMap` the shortlist ranks words by
a relevance learned on public sentences instead of the plain cosine. With
``scaffold_words`` every shortlist also holds the most frequent function words ("the",
"of", "is"; :func:`attacks.inversion_vocabulary.function_words`): the target is the
embedding of a sentence, and without them the search matches its grammar with content
words that are not in it.

Cost per target is about ``max_words x beam_width x candidates`` oracle calls plus
``refine_sweeps x length x candidates``, plus ``(appended + length) x
residual_candidates`` per residual round, plus the found words' other forms, plus about
``length x (candidates + restart_candidates)`` per restart; every call is a short
text, batched.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from attacks.bow_inversion import unit_rows
from attacks.inversion_vocabulary import WordForms, function_words, zipf_frequency
from attacks.word_relevance_map import WordRelevanceMap

__all__ = [
    "ATTACK_NAME",
    "OptimisationInverter",
    "Oracle",
    "SearchConfig",
]

logger = logging.getLogger(__name__)

ATTACK_NAME = "optimisation_inversion"

Oracle = Callable[[Sequence[str]], np.ndarray]
"""Black-box access to the embedding function: texts in, ``(n, d)`` embeddings out."""

_MIN_IMPROVEMENT = 1e-5
_MAX_ZIPF = 8.0  # "the" is 7.7: no word is more frequent than one in ten


@dataclass(frozen=True)
class SearchConfig:
    """Search budget of the optimisation attack.

    Attributes:
        candidates: Shortlisted words per target (the search's alphabet).
        beam_width: Sequences kept per step.
        max_words: Longest text searched.
        refine_sweeps: Coordinate-ascent sweeps after the beam search (0 = none).
        batch_size: Texts per oracle call.
        min_word_gain: Drop a found word whose removal costs less cosine than this
            (0 = keep every word).
        residual_rounds: Rounds that shortlist words by the unexplained part of the
            target and try them (0 = none).
        residual_candidates: Words shortlisted per residual round.
        residual_words: Most words a residual round appends (also past ``max_words``).
        word_forms: Try each found word's other forms (same stem) before pruning.
        restarts: Drop-and-regrow rounds after pruning (0 = none).
        restart_words: Least useful words each restart drops (and may regrow, plus one).
        restart_candidates: Most relevant words added to the shortlist for regrowing.
        scaffold_words: Most frequent function words added to every shortlist (0 = none).
        rare_word_cost: Extra cosine pruning asks of a word per Zipf unit it is rarer
            than ``rare_word_zipf`` (0 = the same ``min_word_gain`` for every word).
        rare_word_zipf: Public Zipf frequency below which a word counts as rare.
        form_prior: Cosine one Zipf unit of a form's public frequency is worth in the
            final form choice (0 = no final form choice).
    """

    candidates: int = 192
    beam_width: int = 2
    max_words: int = 14
    refine_sweeps: int = 1
    batch_size: int = 1024
    min_word_gain: float = 0.0
    residual_rounds: int = 0
    residual_candidates: int = 64
    residual_words: int = 4
    word_forms: bool = False
    restarts: int = 0
    restart_words: int = 3
    restart_candidates: int = 256
    scaffold_words: int = 0
    rare_word_cost: float = 0.0
    rare_word_zipf: float = 3.5
    form_prior: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "candidates",
            "beam_width",
            "max_words",
            "batch_size",
            "residual_candidates",
            "restart_words",
            "restart_candidates",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"SearchConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "refine_sweeps",
            "residual_rounds",
            "residual_words",
            "restarts",
            "scaffold_words",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"SearchConfig.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("rare_word_cost", "form_prior"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(
                    f"SearchConfig.{name} must be in [0, 1) (cosine per Zipf unit), "
                    f"got {getattr(self, name)}"
                )
        if not 0.0 <= self.rare_word_zipf <= _MAX_ZIPF:
            raise ValueError(
                f"SearchConfig.rare_word_zipf must be a Zipf frequency in [0, {_MAX_ZIPF}], "
                f"got {self.rare_word_zipf}"
            )
        if not 0.0 <= self.min_word_gain < 1.0:
            raise ValueError(
                f"SearchConfig.min_word_gain must be in [0, 1), got {self.min_word_gain}"
            )


class OptimisationInverter:
    """Recover text from embeddings by beam search with the encoder as oracle."""

    def __init__(
        self,
        oracle: Oracle,
        *,
        config: SearchConfig | None = None,
        word_map: WordRelevanceMap | None = None,
    ) -> None:
        self._oracle = oracle
        self.config = config or SearchConfig()
        self._word_map = word_map
        self._words: list[str] = []
        self._word_vectors: NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self._forms: WordForms | None = None
        self._scaffold: list[str] = []
        self.oracle_calls = 0

    def fit(
        self, vocabulary: Sequence[str], *, vectors: np.ndarray | None = None
    ) -> OptimisationInverter:
        """Embed every vocabulary word once through the oracle (the shortlist index).

        Args:
            vocabulary: The attacker's candidate words (see
                :mod:`attacks.inversion_vocabulary`), distinct and non-blank.
            vectors: The words' embeddings through the same oracle when already known
                (e.g. from an embedding cache), one row per word; ``None`` embeds them.

        Returns:
            ``self``.
        """
        words = list(vocabulary)
        if not words:
            raise ValueError("OptimisationInverter.fit needs a non-empty vocabulary")
        if len(set(words)) != len(words) or not all(word.strip() for word in words):
            raise ValueError("OptimisationInverter.fit needs distinct, non-blank words")
        started = time.perf_counter()
        if vectors is not None and np.shape(vectors)[0] != len(words):
            raise ValueError(
                f"OptimisationInverter.fit got {np.shape(vectors)[0]} vectors for "
                f"{len(words)} words: pass one embedding per word"
            )
        self._words = words
        self._word_vectors = (
            self._embed(words) if vectors is None else unit_rows(np.asarray(vectors, np.float32))
        )
        wants_forms = self.config.word_forms or self.config.form_prior > 0
        self._forms = WordForms(words) if wants_forms else None
        self._scaffold = function_words(words, self.config.scaffold_words)
        logger.info(
            "optimisation: embedded %d vocabulary words in %.1f s",
            len(words),
            time.perf_counter() - started,
        )
        return self

    @property
    def word_vectors(self) -> NDArray[np.float32]:
        """The vocabulary's unit embeddings, one row per word (after :meth:`fit`)."""
        return self._word_vectors

    def with_word_map(self, word_map: WordRelevanceMap) -> OptimisationInverter:
        """The same fitted inverter, shortlisting by ``word_map`` (no re-embedding)."""
        other = OptimisationInverter(self._oracle, config=self.config, word_map=word_map)
        other._words, other._word_vectors = self._words, self._word_vectors
        other._forms, other._scaffold = self._forms, self._scaffold
        return other

    @property
    def vocabulary_size(self) -> int:
        """Number of words the search may use."""
        return len(self._words)

    def _embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        parts = []
        step = self.config.batch_size
        for start in range(0, len(texts), step):
            chunk = texts[start : start + step]
            parts.append(unit_rows(np.asarray(self._oracle(chunk), dtype=np.float32)))
            self.oracle_calls += len(chunk)
        return np.concatenate(parts, axis=0)

    def shortlist(self, target: np.ndarray) -> list[str]:
        """The ``candidates`` words most relevant to ``target``, then the scaffold.

        The scaffold is the ``scaffold_words`` function words not already shortlisted.
        Relevance is the cosine of each word's own embedding to ``target``, or the learned
        relevance of the ``word_map`` when one was given.
        """
        words = self._ranked(target, self.config.candidates, exclude=())
        return words + [w for w in self._scaffold if w not in words]

    def _ranked(self, target: np.ndarray, count: int, *, exclude: Iterable[str]) -> list[str]:
        """The ``count`` most relevant words to ``target`` outside ``exclude``, best first."""
        if not self._words:
            raise RuntimeError("OptimisationInverter.fit must run before inversion")
        query = target if self._word_map is None else self._word_map.query(target)
        scores = self._word_vectors @ query
        skip = set(exclude)
        wanted = min(count + len(skip), len(self._words))
        top = np.argpartition(-scores, wanted - 1)[:wanted]
        ranked = (self._words[i] for i in top[np.argsort(-scores[top])])
        return [w for w in ranked if w not in skip][:count]

    def _score(self, texts: list[str], target: np.ndarray) -> NDArray[np.float32]:
        scores: NDArray[np.float32] = self._embed(texts) @ target
        return scores

    def _best_gain(
        self, variants: list[list[str]], score: float, target: np.ndarray
    ) -> tuple[int, float] | None:
        """Index and similarity of the variant that raises ``score`` most; ``None`` if none."""
        scores = self._score([" ".join(v) for v in variants], target)
        best = int(np.argmax(scores))
        if scores[best] > score + _MIN_IMPROVEMENT:
            return best, float(scores[best])
        return None

    def _beam_search(self, target: np.ndarray, words: list[str]) -> tuple[list[str], float]:
        beams: list[tuple[list[str], float]] = [([], -1.0)]
        best_seq: list[str] = []
        best_score = -1.0
        for _ in range(self.config.max_words):
            extensions = [[*seq, w] for seq, _ in beams for w in words if w not in seq]
            if not extensions:
                break
            scores = self._score([" ".join(seq) for seq in extensions], target)
            order = np.argsort(-scores)[: self.config.beam_width]
            beams = [(extensions[i], float(scores[i])) for i in order]
            if beams[0][1] <= best_score + _MIN_IMPROVEMENT:
                break
            best_seq, best_score = beams[0]
        return best_seq, best_score

    def _refine(
        self, seq: list[str], score: float, target: np.ndarray, words: list[str]
    ) -> tuple[list[str], float]:
        for _ in range(self.config.refine_sweeps):
            improved = False
            position = 0
            while position < len(seq):
                deletion = len(seq) > 1
                variants = [seq[:position] + seq[position + 1 :]] if deletion else []
                variants += [
                    [*seq[:position], w, *seq[position + 1 :]] for w in words if w not in seq
                ]
                if not variants:
                    break
                gain = self._best_gain(variants, score, target)
                if gain is not None:
                    (best, score), improved = gain, True
                    seq = variants[best]
                    if deletion and best == 0:
                        continue  # a deletion: the same position now holds the next word
                position += 1
            if not improved:
                break
        return seq, score

    def _extend(
        self, seq: list[str], score: float, target: np.ndarray, words: list[str], *, count: int
    ) -> tuple[list[str], float]:
        """Append the best of ``words``, up to ``count``, while that raises the similarity."""
        limit = len(seq) + count
        while len(seq) < limit:
            extensions = [[*seq, w] for w in words if w not in seq]
            if not extensions:
                break
            gain = self._best_gain(extensions, score, target)
            if gain is None:
                break
            seq, score = extensions[gain[0]], gain[1]
        return seq, score

    def _residual_rounds(
        self, seq: list[str], score: float, target: np.ndarray, words: list[str]
    ) -> tuple[list[str], float]:
        """Shortlist by what ``seq`` leaves unexplained, then append and swap those words."""
        tried = list(words)
        for _ in range(self.config.residual_rounds):
            if not seq:
                break
            found = self._embed([" ".join(seq)])[0]
            residual = target - float(target @ found) * found
            norm = float(np.linalg.norm(residual))
            if norm < _MIN_IMPROVEMENT:
                break
            fresh = self._ranked(residual / norm, self.config.residual_candidates, exclude=tried)
            if not fresh:
                break
            tried += fresh
            seq, score = self._extend(seq, score, target, fresh, count=self.config.residual_words)
            seq, score = self._refine(seq, score, target, fresh)
        return seq, score

    def _swap_forms(
        self, seq: list[str], score: float, target: np.ndarray, *, prior: float = 0.0
    ) -> tuple[list[str], float]:
        """Swap each word for its other form (same stem) that scores best, if it beats it.

        A form scores its similarity plus ``prior`` x its public Zipf frequency.
        """
        if self._forms is None:
            return seq, score
        for position, word in enumerate(list(seq)):
            forms = [w for w in self._forms.variants(word) if w not in seq]
            if not forms:
                continue
            variants = [[*seq[:position], w, *seq[position + 1 :]] for w in forms]
            scores = self._score([" ".join(v) for v in variants], target)
            values = (
                scores + prior * np.array([zipf_frequency(w) for w in forms]) if prior else scores
            )
            best = int(np.argmax(values))
            own = score + (prior * zipf_frequency(word) if prior else 0.0)
            if values[best] > own + _MIN_IMPROVEMENT:
                seq, score = variants[best], float(scores[best])
        return seq, score

    def _without_each(self, seq: list[str], target: np.ndarray) -> NDArray[np.float32]:
        """The similarity of ``seq`` with each of its words left out, one oracle batch."""
        return self._score([" ".join(seq[:i] + seq[i + 1 :]) for i in range(len(seq))], target)

    def _keep_threshold(self, word: str) -> float:
        """The cosine ``word`` must be worth to stay: more for publicly rare words."""
        rarity = max(0.0, self.config.rare_word_zipf - zipf_frequency(word))
        return self.config.min_word_gain + self.config.rare_word_cost * rarity

    def _prune(self, seq: list[str], score: float, target: np.ndarray) -> tuple[list[str], float]:
        """Drop the word furthest below its keep threshold, while any word is below it.

        One word at a time: two near-duplicates ("bat", "bats") each cost little to remove
        while the other stays, so dropping every cheap word at once would lose both.
        """
        if self.config.min_word_gain <= 0 and self.config.rare_word_cost <= 0:
            return seq, score
        while len(seq) > 1:
            without = self._without_each(seq, target)
            shortfall = [
                self._keep_threshold(word) - (score - float(rest))
                for word, rest in zip(seq, without, strict=True)
            ]
            weakest = int(np.argmax(shortfall))
            if shortfall[weakest] <= 0:
                break
            seq, score = seq[:weakest] + seq[weakest + 1 :], float(without[weakest])
        return seq, score

    def _settle(self, seq: list[str], score: float, target: np.ndarray) -> tuple[list[str], float]:
        """Word forms, pruning, then the final form choice under the frequency prior."""
        if self.config.word_forms:
            seq, score = self._swap_forms(seq, score, target)
        seq, score = self._prune(seq, score, target)
        if self.config.form_prior > 0:
            chosen, chosen_score = self._swap_forms(
                seq, score, target, prior=self.config.form_prior
            )
            if chosen != seq:
                seq, score = self._prune(chosen, chosen_score, target)
        return seq, score

    def _restart(
        self, seq: list[str], score: float, target: np.ndarray, words: list[str]
    ) -> tuple[list[str], float]:
        """Drop the least useful words, regrow from a wider alphabet; keep it if better."""
        if self.config.restarts == 0:
            return seq, score
        count = self.config.restart_words
        wider = self._ranked(target, self.config.restart_candidates, exclude=())
        alphabet = list(dict.fromkeys([*words, *wider]))
        for _ in range(self.config.restarts):
            if len(seq) <= count:
                break
            without = self._without_each(seq, target)
            dropped = {seq[int(i)] for i in np.argsort(-without)[:count]}
            kept = [w for w in seq if w not in dropped]
            regrow = [w for w in alphabet if w not in dropped]
            trial, trial_score = kept, float(self._score([" ".join(kept)], target)[0])
            trial, trial_score = self._extend(trial, trial_score, target, regrow, count=count + 1)
            trial, trial_score = self._refine(trial, trial_score, target, regrow)
            trial, trial_score = self._settle(trial, trial_score, target)
            if trial_score <= score + _MIN_IMPROVEMENT:
                break
            seq, score = trial, trial_score
        return seq, score

    def invert_one(self, target: np.ndarray) -> tuple[str, float]:
        """The best text found for one target embedding and its cosine similarity."""
        unit = unit_rows(np.asarray(target, dtype=np.float32)[None, :])[0]
        words = self.shortlist(unit)
        seq, score = self._beam_search(unit, words)
        seq, score = self._refine(seq, score, unit, words)
        seq, score = self._residual_rounds(seq, score, unit, words)
        seq, score = self._settle(seq, score, unit)
        seq, score = self._restart(seq, score, unit, words)
        return " ".join(seq), score

    def invert(
        self, vectors: np.ndarray, *, progress: Callable[[int, int], None] | None = None
    ) -> list[str]:
        """The best text found for each target embedding ``(n, d)``.

        Args:
            vectors: Target embeddings.
            progress: Called as ``progress(done, total)`` after each target.
        """
        texts = []
        started = time.perf_counter()
        for i, vector in enumerate(np.asarray(vectors, dtype=np.float32)):
            text, _ = self.invert_one(vector)
            texts.append(text)
            if progress is not None:
                progress(i + 1, len(vectors))
        logger.info(
            "optimisation: inverted %d targets in %.1f s (%d oracle calls so far)",
            len(texts),
            time.perf_counter() - started,
            self.oracle_calls,
        )
        return texts
