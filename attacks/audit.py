"""The privacy and bias audit: run every attack, measure utility, judge against a policy.

``run_audit`` attacks the audited model the way the issue's threat models say, each attack
first against raw embeddings (an attack that fails there proves nothing), then against
every protection: Gaussian noise (a sweep), the deployment's distance-comparison-preserving
encryption (ciphertext-only and known-plaintext), and the released DP adapter. Beside
each protection it measures SciFact nDCG@10, so the report shows privacy against
utility. Membership inference plays the shadow-model game on the adapter's recipe at its
epsilon and on an overfit control; the bias audit runs WEAT/SEAT on the base model and
the fine-tuned one. The evidence is judged by the policy (``policies``) and mapped to
regulations there; the result is the dict the compliance report renders.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from attacks import audit_figures, nearest_neighbour_inversion, optimisation_inversion
from attacks.attribute_inference import AttributeProbe, attribute_report
from attacks.audit_data import AuditData, load_audit_data, owning_nodes
from attacks.audit_protections import DeployedProtection, ProtectionCase, protection_cases
from attacks.base import AttackReport
from attacks.bias_audit import GLOVE_PUBLISHED, load_bias_tests, run_bias_audit
from attacks.index_evidence import gather_index_evidence
from attacks.membership_game import (
    dp_trainer,
    game_reports,
    overfit_trainer,
    play_game,
)
from attacks.membership_inference import record_statistics
from attacks.nearest_neighbour_inversion import NearestNeighbourInverter
from attacks.optimisation_inversion import (
    FREQUENT_MIN_ZIPF,
    OptimisationInverter,
    SearchConfig,
    frequent_words,
    tokenizer_words,
)
from attacks.text_metrics import inversion_report
from embedding_core import EmbeddingCache, Encoder
from embedding_core.adapter import Adapter
from fedembed import __version__
from policies import (
    EVIDENCE_ATTRIBUTE_ADVANTAGE,
    EVIDENCE_BIAS_MAX_ABS_EFFECT_SIZE,
    EVIDENCE_DELTA_MAX_NODE,
    EVIDENCE_EPSILON_MAX_NODE,
    EVIDENCE_INVERSION_F1_PROTECTED,
    EVIDENCE_INVERSION_F1_RAW,
    EVIDENCE_MIA_AUC,
    EVIDENCE_MIA_AUC_OVERFIT_CONTROL,
    EVIDENCE_RETRIEVAL_NDCG10_DROP,
    LoadedPolicy,
    evaluate_audit,
    map_regulations,
)

__all__ = ["AuditConfig", "AuditInputs", "run_audit"]

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
REPORT_VERSION = 1
TITLE = "fedembed privacy and bias audit"
DEFAULT_EPSILON = 8.0
DEFAULT_DELTA = 1e-5
HOLM_ALPHA = 0.05
STATIC = (
    "knows the encoder (black-box queries) and holds public auxiliary text (STS-B, BANKING77 train)"
)


@dataclass(frozen=True)
class AuditConfig:
    """How much the audit attacks (sample sizes and search budgets)."""

    bank_targets: int | None = 500
    claim_targets: int | None = 300
    public_per_source: int | None = None
    corpus_documents: int | None = None
    optimisation_targets: int = 20
    search: SearchConfig = field(default_factory=lambda: SearchConfig(candidates=128, beam_width=1))
    vocabulary_min_zipf: float | None = FREQUENT_MIN_ZIPF  # None: the tokenizer's words only
    noise_sigmas: tuple[float, ...] = (0.02, 0.05, 0.1, 0.2)
    kpa_pairs: int = 1000
    mia_models: int = 8
    bias_tests: tuple[str, ...] | None = None
    bias_mc_samples: int = 100_000
    seed: int = 0

    @classmethod
    def quick(cls) -> AuditConfig:
        """A small audit (about a minute after caching): for tests and smoke runs."""
        return cls(
            bank_targets=150,
            claim_targets=60,
            public_per_source=3000,
            corpus_documents=1500,
            optimisation_targets=4,
            search=SearchConfig(candidates=48, beam_width=1, max_words=8, refine_sweeps=0),
            vocabulary_min_zipf=None,
            noise_sigmas=(0.05, 0.2),
            kpa_pairs=500,
            mia_models=4,
            bias_tests=("weat1", "weat2", "weat7"),
            bias_mc_samples=2_000,
        )


@dataclass(frozen=True)
class AuditInputs:
    """What is audited and against which policy."""

    policy: LoadedPolicy
    model: Path | None = None
    adapter: Path | None = None
    dcpe_keyring: Path | None = None
    index: Path | None = None
    data_dir: Path | None = None
    cache: Path | None = None
    members: Path | None = None


def _report_dict(report: AttackReport) -> dict[str, Any]:
    row = asdict(report)
    row["details"] = {k: v for k, v in report.details.items() if not k.startswith("roc_")}
    return row


class _Audit:
    def __init__(self, inputs: AuditInputs, config: AuditConfig, progress: Progress) -> None:
        self.inputs, self.config, self.progress = inputs, config, progress
        self.reports: list[AttackReport] = []
        self.encoder = Encoder.load(inputs.model)
        self.adapter = Adapter.load(inputs.adapter) if inputs.adapter is not None else None
        if self.adapter is not None:
            self.adapter.check_base(self.encoder.fingerprint)
        cache = EmbeddingCache(inputs.cache) if inputs.cache is not None else None
        self.cache = cache
        progress("loading and embedding the audit data")
        self.owners: dict[int, str] = {}
        self.data: AuditData = load_audit_data(
            inputs.data_dir,
            self.encoder,
            cache=cache,
            bank_targets=config.bank_targets,
            claim_targets=config.claim_targets,
            public_per_source=config.public_per_source,
            corpus_documents=config.corpus_documents,
            seed=config.seed,
        )
        if inputs.members is not None:
            self.owners = owning_nodes(inputs.members, self.data.scifact_test.corpus_ids)

    def add(self, report: AttackReport) -> AttackReport:
        self.reports.append(report)
        logger.info("audit: %s on %s: %s", report.attack, report.target, report.metrics)
        return report

    # -- inversion and attribute inference ------------------------------------------------
    def inversions(self, cases: Sequence[ProtectionCase]) -> list[dict[str, Any]]:
        data, n_opt = self.data, self.config.optimisation_targets
        nn = NearestNeighbourInverter().fit(data.public_texts, data.public_vectors)
        self.progress("optimisation attack: embedding the vocabulary")
        vocab = tokenizer_words(self.encoder.model.tokenizer.get_vocab().keys())
        if self.config.vocabulary_min_zipf is not None:
            vocab = sorted({*vocab, *frequent_words(min_zipf=self.config.vocabulary_min_zipf)})
        batch = self.config.search.batch_size
        vocab_vectors = (
            self.cache.get_or_encode(self.encoder, vocab, batch_size=batch, show_progress=False)
            if self.cache is not None
            else None
        )
        opt = OptimisationInverter(
            lambda texts: self.encoder.encode(texts, batch_size=batch), config=self.config.search
        ).fit(vocab, vectors=vocab_vectors)
        words_note = (
            ""
            if self.config.vocabulary_min_zipf is None
            else f" plus the public wordfreq list (Zipf >= {self.config.vocabulary_min_zipf})"
        )
        intent = AttributeProbe().fit(data.intent_train_vectors, data.intent_train_labels)
        owner = self._owner_probe()
        rows = []
        targets = (
            ("banking77-test", data.bank_texts, data.bank_vectors),
            ("scifact-claims", data.claim_texts, data.claim_vectors),
        )
        for case in cases:
            self.progress(f"attacking {case.label}")
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
                if case.optimisation:
                    opt_report = self.add(
                        inversion_report(
                            optimisation_inversion.ATTACK_NAME,
                            opt,
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
    def membership(self, epsilon: float, delta: float) -> tuple[float | None, float | None]:
        pool = self.data.membership_pool
        base = record_statistics(None, pool, temperature=0.05)
        result: dict[str, float] = {}
        for name, recipe in (("control", None), ("dp", epsilon)):
            started = time.perf_counter()
            self.progress(
                f"membership inference: training {self.config.mia_models} "
                f"{'overfit' if recipe is None else 'DP'} adapters"
            )
            if recipe is None:
                train, sigma = overfit_trainer(), None
                target = "overfit non-DP adapter (control)"
            else:
                train, sigma = dp_trainer(target_epsilon=recipe, target_delta=delta)
                target = f"DP-SGD adapter recipe (eps {recipe:g}, delta {delta:g})"
            game = play_game(
                target,
                pool,
                base,
                train,
                models=self.config.mia_models,
                seed=self.config.seed,
                epsilon=recipe,
                noise_multiplier=sigma,
            )
            reports = game_reports(game, time.perf_counter() - started)
            for report in reports:
                self.add(report)
            result[name] = max(r.metrics["auc"] for r in reports)
        return result.get("dp"), result.get("control")

    # -- bias -------------------------------------------------------------------------------
    def bias(self) -> tuple[list[dict[str, Any]], float | None]:
        self.progress("bias audit (WEAT/SEAT)")
        tests = load_bias_tests(
            self.inputs.data_dir / "seat" if self.inputs.data_dir else None,
            names=list(self.config.bias_tests) if self.config.bias_tests else None,
        )
        kwargs = {
            "cache": self.cache,
            "n_samples": self.config.bias_mc_samples,
            "seed": self.config.seed,
            "alpha": HOLM_ALPHA,
        }
        base = self.add(run_bias_audit(tests, self.encoder, **kwargs))  # type: ignore[arg-type]
        tuned = None
        if self.adapter is not None:
            tuned = self.add(run_bias_audit(tests, self.encoder, adapter=self.adapter, **kwargs))  # type: ignore[arg-type]
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


def _budget(adapter: Adapter | None) -> list[dict[str, Any]]:
    if adapter is None:
        return []
    meta = adapter.metadata
    refused = {str(r.get("node")) for r in meta.get("refusals", []) if isinstance(r, dict)}
    return [
        {
            "node": node,
            "epsilon": float(eps),
            "delta": meta.get("target_delta"),
            "rounds": meta.get("rounds"),
            "refused": node in refused,
        }
        for node, eps in sorted((meta.get("per_node_epsilon") or {}).items())
    ]


def json_safe(value: Any) -> Any:
    """``value`` with numpy scalars as Python numbers and NaN/infinity as ``None``."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _adapter_sha256(folder: Path | None) -> str | None:
    """SHA-256 of the adapter's manifest and weights files together."""
    if folder is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def run_audit(
    inputs: AuditInputs, config: AuditConfig | None = None, *, progress: Progress | None = None
) -> dict[str, Any]:
    """Run the whole audit and return the report's data (see ``attacks.compliance_report``).

    Args:
        inputs: Model, adapter, index keyring, data and the policy.
        config: Sample sizes and budgets; :class:`AuditConfig` defaults if ``None``.
        progress: Called with a line per stage (the CLI prints them).
    """
    config = config or AuditConfig()
    started = time.perf_counter()

    def step(message: str) -> None:
        line = f"[{time.perf_counter() - started:6.0f} s] {message}"
        logger.info("audit: %s", message)
        if progress is not None:
            progress(line)

    audit = _Audit(inputs, config, step)
    meta = audit.adapter.metadata if audit.adapter is not None else {}
    epsilon = float(meta.get("target_epsilon") or DEFAULT_EPSILON)
    delta = float(meta.get("target_delta") or DEFAULT_DELTA)
    deployed = DeployedProtection.from_keyring(inputs.dcpe_keyring)
    cases = protection_cases(audit.data, audit.adapter, deployed, config)
    utility = audit.inversions(cases)
    raw = next(r for r in utility if r["protection"] == "raw")
    live = [r for r in utility if r["deployed"]]
    mia_auc, control_auc = audit.membership(epsilon, delta)
    bias_rows, bias_max = audit.bias()
    budget = _budget(audit.adapter)
    evidence: dict[str, float | None] = {
        EVIDENCE_INVERSION_F1_RAW: raw["inversion_f1"],
        EVIDENCE_INVERSION_F1_PROTECTED: max(r["inversion_f1"] for r in live),
        EVIDENCE_MIA_AUC: mia_auc,
        EVIDENCE_MIA_AUC_OVERFIT_CONTROL: control_auc,
        EVIDENCE_ATTRIBUTE_ADVANTAGE: max(r["attribute_advantage"] for r in live),
        EVIDENCE_BIAS_MAX_ABS_EFFECT_SIZE: bias_max,
        EVIDENCE_EPSILON_MAX_NODE: max((b["epsilon"] for b in budget), default=None),
        EVIDENCE_DELTA_MAX_NODE: max(
            (float(b["delta"]) for b in budget if b["delta"]), default=None
        ),
        EVIDENCE_RETRIEVAL_NDCG10_DROP: 100.0 * (raw["ndcg10"] - min(r["ndcg10"] for r in live)),
    }
    index_section = deployed.describe(inputs.index)
    if inputs.index is not None:
        step("checking the index: encryption at rest, audit-log chain")
        scanned = gather_index_evidence(inputs.index)
        evidence.update(scanned.to_evidence())
        index_section.update(scanned.to_dict())
    policy = inputs.policy
    checks = evaluate_audit(policy.policy, evidence)
    step("writing figures")
    figures = audit_figures.figures(audit.reports, utility, bias_rows)
    results: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "title": TITLE,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fedembed_version": __version__,
        "subject": {
            "model": {"id": audit.encoder.model_id, "fingerprint": audit.encoder.fingerprint},
            "adapter": None
            if audit.adapter is None
            else {
                "path": str(inputs.adapter),
                "sha256": _adapter_sha256(inputs.adapter),
                "epsilon": meta.get("target_epsilon"),
                "delta": meta.get("target_delta"),
                "rounds": meta.get("rounds"),
                "aggregation": meta.get("aggregation"),
            },
            "index": index_section,
            "data": audit.data.sources,
        },
        "policy": policy.to_dict(),
        "attacks": [_report_dict(r) for r in audit.reports],
        "evidence": evidence,
        "privacy_budget": budget,
        "bias": bias_rows,
        "utility": utility,
        "checks": [c.to_dict() for c in checks],
        "regulations": map_regulations(checks),
        "figures": figures,
        "limitations": _limitations(config, audit.adapter is not None, deployed),
        "seconds": round(time.perf_counter() - started, 1),
        "json_sha256": None,
    }
    step("audit done")
    return dict(json_safe(results))


def _limitations(config: AuditConfig, adapter: bool, deployed: DeployedProtection) -> list[str]:
    notes = [
        f"The optimisation inversion attack ran on the first {config.optimisation_targets} "
        "targets of each set (it queries the encoder thousands of times per target); the "
        "nearest-neighbour attack and the probes ran on every sampled target.",
        f"Membership inference trains {config.mia_models} adapters per recipe on SciFact's "
        "public train pairs with the full-batch DP-SGD recipe at the adapter's epsilon; it "
        "measures the recipe, not the federation's exact per-node schedule.",
        "The bag-of-words inverter (Song and Raghunathan 2020) is measured in the benchmarks "
        "(benchmarks/RESULTS.md), not here: it was weaker than the two attacks shown.",
        "The keyed-rotation rows measure a protection that is not deployed: a secret random "
        "rotation keeps every inner product (no retrieval loss) and leaves ciphertext-only "
        "attackers at chance, but a known-plaintext attacker with about as many pairs as "
        "dimensions undoes it exactly.",
        "Passing checks are evidence about these attacks on these data, not a proof that no "
        "other attack succeeds; the DP guarantee is the only worst-case statement.",
    ]
    if config.corpus_documents is not None:
        notes.append(
            f"Retrieval utility was measured on a {config.corpus_documents}-document SciFact "
            "corpus (every judged document plus a sample): its nDCG@10 is higher than on the "
            "full corpus; compare protections with each other, not with published numbers."
        )
    if not adapter:
        notes.append("No adapter was given: no fine-tuned model, privacy ledger or DP recipe.")
    if deployed.key is None:
        notes.append(
            "No DCPE keyring was given: the deployed protection is encryption at rest only, "
            "which protects stolen disks but not vectors seen by the running index process."
        )
    return notes
