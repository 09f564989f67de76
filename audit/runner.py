"""The audit's attack runner: it attacks every protection and collects the evidence.

:class:`AuditRunner` loads the audited encoder and adapter and embeds the audit data,
then runs each stage of the audit and keeps every :class:`~attacks.base.AttackReport`:
inversion (nearest-neighbour and optimisation) and attribute inference (intent and
owning node) against each protection case, the membership-inference game on the DP
recipe and an overfit control, and the WEAT/SEAT bias audit on the base and fine-tuned
models. Each stage returns the numbers the policy checks are computed from.

Each stage announces itself through :class:`AuditSteps` (``audit [5/9] membership
inference: DP recipe, 8 shadows + 4 targets``), and its long loops (optimisation
inversion's targets, the membership game's models, the word map's batches, the bias
tests) advance an :class:`embedding_core.progress.Progress`: a bar on a terminal, a log
line every 10 s otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

import numpy as np

from attacks import nearest_neighbour_inversion, optimisation_inversion
from attacks.attribute_inference import AttributeProbe, attribute_report
from attacks.base import AttackReport
from attacks.bias_audit import GLOVE_PUBLISHED, load_bias_tests, run_bias_audit
from attacks.inversion_vocabulary import frequent_words, tokenizer_words
from attacks.membership_game import (
    CONTROL,
    Trainer,
    dp_trainer,
    game_reports,
    overfit_trainer,
    play_game,
)
from attacks.membership_inference import record_statistics
from attacks.nearest_neighbour_inversion import NearestNeighbourInverter
from attacks.optimisation_inversion import OptimisationInverter
from attacks.text_metrics import inversion_report
from attacks.word_relevance_map import WordRelevanceMap
from audit.config import AuditConfig, AuditInputs
from audit.data import AuditData, load_audit_data, owning_nodes
from audit.membership_bound import ReleaseBound
from audit.protection_cases import ProtectionCase
from dp_training import InteractionSet
from embedding_core import EmbeddingCache, Encoder
from embedding_core.adapter import Adapter, AdapterKind
from embedding_core.progress import Progress as Meter

__all__ = ["HOLM_ALPHA", "STATIC", "AuditRunner", "AuditSteps", "Progress", "counted"]

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
"""Where the audit's step lines go (the CLI prints them)."""
HOLM_ALPHA = 0.05
# One pass over public sentences + glosses (185,000 texts) is 7 times the steps of the
# default 3 passes over the public sentences alone, and ranked claim words best.
GLOSS_WORD_MAP_EPOCHS = 1
STATIC = (
    "knows the encoder (black-box queries) and holds public auxiliary text (STS-B, BANKING77 train)"
)


class AuditSteps:
    """The audit's steps, announced numbered: ``audit [3/9] inversion and attribute ...``.

    Each line goes to the log and to ``progress`` (if any), after the seconds since the
    audit started. :meth:`step` starts the next step; calling the object (or
    :meth:`detail`) says something within the current one, so an :class:`AuditSteps` is
    also a :data:`Progress`.

    Args:
        total: How many steps the audit has (0: unknown, the lines show no total).
        progress: Called with each line (the CLI prints them).
    """

    def __init__(self, total: int = 0, progress: Progress | None = None) -> None:
        self.total, self.number = total, 0
        self._progress = progress
        self._started = time.perf_counter()

    @property
    def label(self) -> str:
        """``audit [3/9]`` (``audit [3]`` when the total is unknown)."""
        of = f"/{self.total}" if self.total else ""
        return f"audit [{self.number}{of}]"

    def step(self, title: str) -> None:
        """Start the next step, called ``title``."""
        self.number += 1
        self._say(f"{self.label} {title}")

    def detail(self, message: str) -> None:
        """Say ``message`` within the current step."""
        self._say(f"{self.label}   {message}")

    def __call__(self, message: str) -> None:
        """Say ``message`` within the current step (a :data:`Progress`)."""
        self.detail(message)

    def _say(self, line: str) -> None:
        logger.info("%s", line)
        if self._progress is not None:
            self._progress(f"[{time.perf_counter() - self._started:6.0f} s] {line}")


@contextmanager
def counted(what: str, unit: str, total: int | None = None) -> Iterator[Callable[[int, int], None]]:
    """A ``progress(done, total)`` callback (the attacks' kind) that drives a :class:`Meter`.

    The meter opens now when ``total`` is given, else at the first call (which tells the
    total), and closes on exit.
    """
    meter: Meter | None = None if total is None else Meter(total, what=what, unit=unit)

    def report(done: int, total: int) -> None:
        nonlocal meter
        if meter is None:
            meter = Meter(total, what=what, unit=unit)
        meter.advance(max(done - meter.done, 0))

    try:
        yield report
    finally:
        if meter is not None:
            meter.close()


class _CountedInverter:
    """An optimisation inverter whose :meth:`invert` advances a progress per target."""

    def __init__(self, inverter: OptimisationInverter, what: str) -> None:
        self.inverter, self.what = inverter, what

    def invert(self, vectors: np.ndarray) -> list[str]:
        with counted(self.what, "targets", len(vectors)) as progress:
            return self.inverter.invert(vectors, progress=progress)


def _counted_trainer(train: Trainer, meter: Meter) -> Trainer:
    """``train`` advancing ``meter`` by one per model trained."""

    def counting(data: InteractionSet, seed: int) -> Adapter:
        adapter = train(data, seed)
        meter.advance()
        return adapter

    return counting


class AuditRunner:
    """One audit's loaded models and data, and the reports of every attack run so far.

    ``progress`` takes the audit's lines; an :class:`AuditSteps` numbers the stages the
    runner starts (any other callable gets them numbered without a total).
    """

    def __init__(self, inputs: AuditInputs, config: AuditConfig, progress: Progress) -> None:
        self.inputs, self.config = inputs, config
        self.steps = progress if isinstance(progress, AuditSteps) else AuditSteps(0, progress)
        self.progress: Progress = self.steps
        self.reports: list[AttackReport] = []
        self.steps.step("loading and embedding the audit data")
        self.encoder = Encoder.load(inputs.model, backend=inputs.encoder_backend)
        self.adapter = Adapter.load(inputs.adapter) if inputs.adapter is not None else None
        if self.adapter is not None:
            self.adapter.check_base(self.encoder.fingerprint)
        cache = EmbeddingCache(inputs.cache) if inputs.cache is not None else None
        self.cache = cache
        self.owners: dict[int, str] = {}
        self.data: AuditData = load_audit_data(
            inputs.data_dir,
            self.encoder,
            cache=cache,
            bank_targets=config.bank_targets,
            claim_targets=config.claim_targets,
            public_per_source=config.public_per_source,
            corpus_documents=config.corpus_documents,
            wordnet=inputs.wordnet if config.word_map else None,
            seed=config.seed,
            progress=self.steps.detail,
        )
        if inputs.members is not None:
            self.owners = owning_nodes(inputs.members, self.data.scifact_test.corpus_ids)

    def add(self, report: AttackReport) -> AttackReport:
        """Keep ``report`` among the audit's reports, log it and return it."""
        self.reports.append(report)
        logger.info("audit: %s on %s: %s", report.attack, report.target, report.metrics)
        return report

    # -- inversion and attribute inference ------------------------------------------------
    def inversions(self, cases: Sequence[ProtectionCase]) -> list[dict[str, Any]]:
        """Run the inversion and attribute attacks on each case; one utility row per case."""
        data, n_opt = self.data, self.config.optimisation_targets
        self.steps.step(
            f"inversion and attribute inference: {len(cases)} protections"
            + (f", optimisation inversion on {n_opt} targets each" if n_opt > 0 else "")
        )
        nn = NearestNeighbourInverter().fit(data.public_texts, data.public_vectors)
        opt = self._optimisation_inverter() if n_opt > 0 else None
        notes = []
        if self.config.vocabulary_min_zipf is not None:
            notes.append(
                f" plus the public wordfreq list (Zipf >= {self.config.vocabulary_min_zipf})"
            )
        if self.config.word_map:
            glosses = " and WordNet's glosses" if data.gloss_texts else ""
            notes.append(f", a word-relevance map learned on public sentences{glosses}")
        if self.config.search.rare_word_cost > 0 or self.config.search.form_prior > 0:
            notes.append(", public word frequencies as a prior on rare words and word forms")
        words_note = "".join(notes)
        intent = AttributeProbe().fit(data.intent_train_vectors, data.intent_train_labels)
        owner = self._owner_probe()
        rows = []
        targets = (
            ("banking77-test", data.bank_texts, data.bank_vectors),
            ("scifact-claims", data.claim_texts, data.claim_vectors),
        )
        for number, case in enumerate(cases, start=1):
            self.progress(f"attacking {case.label} ({number}/{len(cases)})")
            best = 0.0
            for name, texts, vectors in targets:
                seen = case.attacker_view(vectors)
                label = f"{name} {case.label}"
                nn_report = self.add(
                    inversion_report(
                        nearest_neighbour_inversion.ATTACK_NAME,
                        nn,
                        texts,
                        seen,
                        target=label,
                        threat_model=f"{STATIC}; {case.threat}",
                        details={"protection": case.label},
                    )
                )
                best = max(best, nn_report.metrics["f1"])
                if case.optimisation and opt is not None:
                    opt_report = self.add(
                        inversion_report(
                            optimisation_inversion.ATTACK_NAME,
                            _CountedInverter(opt, f"audit: optimisation inversion, {label}"),
                            texts[:n_opt],
                            seen[:n_opt],
                            target=label,
                            threat_model=f"knows the encoder and its tokenizer{words_note}, "
                            f"queries the encoder as an oracle (no training data); {case.threat}",
                            details={
                                "protection": case.label,
                                "search": asdict(self.config.search),
                                "vocabulary": opt.vocabulary_size,
                                "vocabulary_min_zipf": self.config.vocabulary_min_zipf,
                                "word_map": self.config.word_map,
                                "word_map_glosses": len(data.gloss_texts),
                            },
                        )
                    )
                    best = max(best, opt_report.metrics["f1"])
            attribute = self.add(
                attribute_report(
                    intent,
                    case.attacker_view(data.bank_vectors),
                    data.bank_labels,
                    target=f"banking77-test intent {case.label}",
                    threat_model="a linear probe trained on public labelled text (BANKING77 train) "
                    f"predicts the intent; {case.threat}",
                    details={"protection": case.label},
                )
            )
            rows.append(
                {
                    "protection": case.label,
                    "ndcg10": case.ndcg10,
                    "inversion_f1": best,
                    "attribute_accuracy": attribute.metrics["accuracy"],
                    "attribute_advantage": max(
                        attribute.metrics["advantage"], self._owner_attack(case, owner)
                    ),
                    "deployed": case.deployed,
                }
            )
        return rows

    def _optimisation_inverter(self) -> OptimisationInverter:
        """The optimisation attack, fitted on the tokenizer's words (and its word map)."""
        data = self.data
        vocab = tokenizer_words(self.encoder.model.tokenizer.get_vocab().keys())
        if self.config.vocabulary_min_zipf is not None:
            vocab = sorted({*vocab, *frequent_words(min_zipf=self.config.vocabulary_min_zipf)})
        batch = self.config.search.batch_size
        self.progress(f"optimisation attack: embedding its vocabulary ({len(vocab)} words)")
        what = "audit: embed the optimisation attack's vocabulary"
        vocab_vectors = (
            self.cache.get_or_encode(self.encoder, vocab, batch_size=batch, what=what)
            if self.cache is not None
            else self.encoder.encode(vocab, batch_size=batch, what=what)
        )
        # The attack's oracle calls are many and short: no progress of their own (the
        # targets are counted instead).
        opt = OptimisationInverter(
            lambda texts: self.encoder.encode(texts, batch_size=batch, show_progress=False),
            config=self.config.search,
        ).fit(vocab, vectors=vocab_vectors)
        if self.config.word_map:
            self.progress("optimisation attack: learning word relevance on public sentences")
            texts, vectors = data.public_texts, data.public_vectors
            if data.gloss_texts:
                texts = [*texts, *data.gloss_texts]
                vectors = np.vstack([vectors, data.gloss_vectors])
            epochs = GLOSS_WORD_MAP_EPOCHS if data.gloss_texts else WordRelevanceMap().epochs
            with counted("audit: word relevance map", "batches") as progress:
                word_map = WordRelevanceMap(epochs=epochs, seed=self.config.seed).fit(
                    texts, vectors, vocab, opt.word_vectors, progress=progress
                )
            opt = opt.with_word_map(word_map)
        return opt

    def _owner_probe(self) -> tuple[AttributeProbe, list[int]] | None:
        """A probe for the owning node, trained on a random half of the members' documents."""
        if not self.owners:
            return None
        rows = list(self.owners)
        order = np.random.default_rng(self.config.seed).permutation(len(rows))
        train, test = order[: len(rows) // 2], order[len(rows) // 2 :]
        vectors = self.data.retrieval.documents
        probe = AttributeProbe().fit(
            vectors[[rows[i] for i in train]], [self.owners[rows[i]] for i in train]
        )
        return probe, [rows[i] for i in test]

    def _owner_attack(
        self, case: ProtectionCase, owner: tuple[AttributeProbe, list[int]] | None
    ) -> float:
        if owner is None:
            return float("-inf")
        probe, test = owner
        report = self.add(
            attribute_report(
                probe,
                case.attacker_view(self.data.retrieval.documents[test]),
                [self.owners[i] for i in test],
                target=f"scifact-docs owning-node {case.label}",
                threat_model="a probe trained on documents whose owner the attacker knows "
                f"(a random half) predicts the owning member of the others; {case.threat}",
                details={"protection": case.label},
            )
        )
        return float(report.metrics["advantage"])

    # -- membership inference ---------------------------------------------------------------
    def membership(
        self, epsilon: float, delta: float, release: ReleaseBound
    ) -> tuple[float | None, float | None]:
        """Play the membership game on the DP recipe and the overfit control: their best AUCs.

        The DP recipe trains adapters of the released adapter's shape (kind and rank); the
        control is always the full ``residual_linear`` adapter, overfit, the model the
        attack is strongest against. The DP rows show ``release``'s bound (read from the
        release's manifest), not the simulated recipe's; each game also reports its
        no-signal control, which is no attack and counts in neither AUC.
        """
        pool = self.data.membership_pool
        shape = self.adapter.kind if self.adapter is not None else AdapterKind.RESIDUAL_LINEAR
        kind = shape.value
        rank = self.adapter.rank if self.adapter is not None else None
        base = record_statistics(None, pool, temperature=0.05)
        result: dict[str, float] = {}
        models = self.config.mia_models + self.config.mia_targets
        for name, recipe in (("control", None), ("dp", epsilon)):
            started = time.perf_counter()
            self.steps.step(
                f"membership inference: {'overfit control' if recipe is None else 'DP recipe'}, "
                f"{self.config.mia_models} shadows + {self.config.mia_targets} targets"
            )
            if recipe is None:
                train, sigma = overfit_trainer(), None
                target = "overfit non-DP adapter (control)"
            else:
                train, sigma = dp_trainer(
                    target_epsilon=recipe, target_delta=delta, kind=kind, rank=rank
                )
                target = f"DP-SGD {kind} adapter recipe (eps {recipe:.4g}, delta {delta:g})"
            what = f"audit: membership inference, {name} models"
            with Meter(models, what=what, unit="models") as meter:
                game = play_game(
                    target,
                    pool,
                    base,
                    _counted_trainer(train, meter),
                    shadows=self.config.mia_models,
                    targets=self.config.mia_targets,
                    seed=self.config.seed,
                    epsilon=recipe,
                    noise_multiplier=sigma,
                )
            dp_row = recipe is not None
            reports = game_reports(
                game,
                time.perf_counter() - started,
                bound=release.auc_bound if dp_row else None,
                extra={"auc_bound_basis": release.basis} if dp_row else None,
            )
            for report in reports:
                self.add(report)
            result[name] = max(r.metrics["auc"] for r in reports if r.details["variant"] != CONTROL)
        return result.get("dp"), result.get("control")

    # -- bias -------------------------------------------------------------------------------
    def bias(self) -> tuple[list[dict[str, Any]], float | None]:
        """Run WEAT/SEAT on the base and tuned models: rows and the largest significant |d|."""
        tests = load_bias_tests(
            self.inputs.data_dir / "seat" if self.inputs.data_dir else None,
            names=list(self.config.bias_tests) if self.config.bias_tests else None,
        )
        models = "base model" + (" and the adapted one" if self.adapter is not None else "")
        self.steps.step(f"bias audit (WEAT/SEAT): {len(tests)} tests on the {models}")
        kwargs: dict[str, Any] = {
            "cache": self.cache,
            "n_samples": self.config.bias_mc_samples,
            "seed": self.config.seed,
            "alpha": HOLM_ALPHA,
        }
        with counted("audit: bias tests, base model", "tests", len(tests)) as progress:
            base = self.add(run_bias_audit(tests, self.encoder, progress=progress, **kwargs))
        tuned = None
        if self.adapter is not None:
            with counted("audit: bias tests, adapted model", "tests", len(tests)) as progress:
                tuned = self.add(
                    run_bias_audit(
                        tests, self.encoder, adapter=self.adapter, progress=progress, **kwargs
                    )
                )
        tuned_rows = {r["test"]: r for r in (tuned.details["tests"] if tuned else [])}
        rows, significant = [], []
        for row in base.details["tests"]:
            other = tuned_rows.get(row["test"])
            deployed = other or row
            rows.append(
                {
                    "test": row["test"],
                    "effect_size": row["effect_size"],
                    "p_value": row["p_value"],
                    "holm_p": row["p_holm"],
                    "glove_reference": GLOVE_PUBLISHED.get(row["test"]),
                    "adapter_effect_size": other["effect_size"] if other else None,
                    "adapter_holm_p": other["p_holm"] if other else None,
                }
            )
            if deployed["p_holm"] < HOLM_ALPHA:
                significant.append(abs(deployed["effect_size"]))
        return rows, (max(significant) if significant else 0.0)
