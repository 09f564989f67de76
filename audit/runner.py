"""The audit's attack runner: it attacks every protection and collects the evidence.

:class:`AuditRunner` loads the audited encoder and adapter and embeds the audit data,
then runs each stage of the audit and keeps every :class:`~attacks.base.AttackReport`:
inversion (nearest-neighbour and optimisation) and attribute inference (intent, or the
auditor's attribute, by static and adaptive attackers; owning node) against each
protection case, the membership-inference game on the DP recipe and an overfit control
(on the auditor's own records when given: :mod:`audit.auditor_data`), and the WEAT/SEAT
bias audit on the base and fine-tuned models. Each stage returns the numbers the policy
checks are computed from.

Each stage announces itself through :class:`audit.audit_steps.AuditSteps` (``audit [5/9] membership
inference: DP recipe, 8 shadows + 4 targets``), and its long loops (optimisation
inversion's targets, the membership game's models, the word map's batches, the bias
tests) advance an :class:`embedding_core.progress.Progress`: a bar on a terminal, a log
line every 10 s otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from attacks import nearest_neighbour_inversion, optimisation_inversion
from attacks.adaptive_attribute import attribute_attacks
from attacks.attribute_inference import AttributeProbe, attribute_report
from attacks.base import AttackReport
from attacks.bias_audit import GLOVE_PUBLISHED, run_bias_audit
from attacks.inversion_vocabulary import frequent_words, tokenizer_words
from attacks.membership_game import (
    CONTROL,
    dp_trainer,
    game_reports,
    overfit_trainer,
    play_game,
)
from attacks.membership_inference import record_statistics
from attacks.nearest_neighbour_inversion import NearestNeighbourInverter
from attacks.optimisation_inversion import OptimisationInverter
from attacks.seat_tests import collect_bias_tests, load_bias_folder, load_bias_tests
from attacks.text_metrics import inversion_report
from attacks.word_relevance_map import WordRelevanceMap
from audit.audit_steps import AuditSteps, CountedInverter, Progress, counted, counted_trainer
from audit.auditor_data import AttributeTask, AuditorData, embed_auditor_records, replace_sources
from audit.auditor_records import read_auditor_inputs
from audit.config import AuditConfig, AuditInputs
from audit.data import AuditData, load_audit_data, owning_nodes
from audit.membership_bound import ReleaseBound
from audit.protection_cases import ProtectionCase
from embedding_core import EmbeddingCache, Encoder
from embedding_core.adapter import Adapter, AdapterKind
from embedding_core.errors import DatasetNotFoundError
from embedding_core.progress import Progress as Meter

__all__ = ["HOLM_ALPHA", "STATIC", "AuditRunner"]

logger = logging.getLogger(__name__)

HOLM_ALPHA = 0.05
# One pass over public sentences + glosses (185,000 texts) is 7 times the steps of the
# default 3 passes over the public sentences alone, and ranked claim words best.
GLOSS_WORD_MAP_EPOCHS = 1
STATIC = (
    "knows the encoder (black-box queries) and holds public auxiliary text (STS-B, BANKING77 train)"
)


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
        self.auditor: AuditorData = embed_auditor_records(
            read_auditor_inputs(inputs), self._embed, seed=config.seed
        )
        self.data.sources = replace_sources(self.data.sources, self.auditor)

    def _embed(self, texts: Sequence[str], what: str) -> np.ndarray:
        """The base encoder's vectors of ``texts`` (through the cache when given)."""
        self.steps.detail(f"embedding {what} ({len(texts)} texts)")
        if self.cache is not None:
            return self.cache.get_or_encode(self.encoder, list(texts), what=f"audit: embed {what}")
        return self.encoder.encode(list(texts), what=f"audit: embed {what}")

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
        task = self.auditor.attribute or AttributeTask(
            name="banking77-test intent",
            attribute="the intent",
            public="BANKING77 train",
            public_vectors=data.intent_train_vectors,
            public_labels=data.intent_train_labels,
            target_vectors=data.bank_vectors,
            target_labels=data.bank_labels,
        )
        static = AttributeProbe().fit(task.public_vectors, task.public_labels)
        owner = self._owner_probe()
        rows = []
        targets = (
            (self.auditor.targets,)
            if self.auditor.targets is not None
            else (
                ("banking77-test", data.bank_texts, data.bank_vectors),
                ("scifact-claims", data.claim_texts, data.claim_vectors),
            )
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
                            CountedInverter(opt, f"audit: optimisation inversion, {label}"),
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
            static_row, adaptive_row = (
                self.add(report)
                for report in attribute_attacks(
                    static,
                    case.attacker_view,
                    task.public_vectors,
                    task.public_labels,
                    task.target_vectors,
                    task.target_labels,
                    target=f"{task.name} {case.label}",
                    public=task.public,
                    attribute=task.attribute,
                    threat=case.threat,
                    details={"protection": case.label},
                )
            )
            attribute = max(static_row, adaptive_row, key=lambda r: r.metrics["advantage"])
            rows.append(
                {
                    "protection": case.label,
                    "ndcg10": case.ndcg10,
                    "inversion_f1": best,
                    "attribute_accuracy": attribute.metrics["accuracy"],
                    "attribute_attacker": attribute.details["attacker"],
                    "attribute_advantage": max(
                        attribute.metrics["advantage"], self._owner_attack(case, owner)
                    ),
                    "deployed": case.deployed,
                }
                | ({} if case.ndcg_claims is None else {"ndcg10_claims": case.ndcg_claims})
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
        pool = self.auditor.membership_pool
        pool = self.data.membership_pool if pool is None else pool
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
            if self.auditor.membership_name is not None:
                target += f" on {self.auditor.membership_name}"
            what = f"audit: membership inference, {name} models"
            with Meter(models, what=what, unit="models") as meter:
                game = play_game(
                    target,
                    pool,
                    base,
                    counted_trainer(train, meter),
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
        """Run WEAT/SEAT on the base and tuned models: rows and the largest significant |d|.

        The sent-bias suite (``config.bias_tests`` of it, those it holds) and the auditor's
        folders (``inputs.bias_tests``) are one Holm family; with auditor folders a missing
        suite is skipped. p-values are two-sided, so the evidence is the largest |d|
        (sample sd) among tests significant after Holm, whichever direction they lean.
        """
        groups = [load_bias_folder(f, option="--bias-tests") for f in self.inputs.bias_tests]
        try:
            suite = load_bias_tests(
                self.inputs.data_dir / "seat" if self.inputs.data_dir else None,
                names=list(self.config.bias_tests) if self.config.bias_tests else None,
            )
        except DatasetNotFoundError:
            if not groups:
                raise
            logger.warning("bias: no sent-bias suite found; only the auditor's tests run")
            suite = []
        tests, _ = collect_bias_tests([suite, *groups])
        suite_names = {str(t.path): t.file_name for t in suite}  # the GloVe values' names
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
                    "effect_size": row["effect_size_sample"],
                    "effect_size_population": row["effect_size_population"],
                    "p_value": row["p_value"],
                    "holm_p": row["p_holm"],
                    "p_min": row["p_min"],
                    "power": row["power"],
                    "significant": row["significant"],
                    "glove_reference": GLOVE_PUBLISHED.get(suite_names.get(row["file"], "")),
                    "adapter_effect_size": other["effect_size_sample"] if other else None,
                    "adapter_effect_size_population": (
                        other["effect_size_population"] if other else None
                    ),
                    "adapter_holm_p": other["p_holm"] if other else None,
                }
            )
            if deployed["significant"] and deployed["effect_size_sample"] is not None:
                significant.append(abs(deployed["effect_size_sample"]))
        return rows, (max(significant) if significant else 0.0)
