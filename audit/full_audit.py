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

The configuration lives in :mod:`audit.config`, the attacks in :mod:`audit.runner`, the
protections in :mod:`audit.protection_cases` and the results' supporting sections in
:mod:`audit.results`; this module assembles the evidence and the verdict.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from audit.audit_steps import AuditSteps, Progress
from audit.config import DEFAULT_DELTA, DEFAULT_EPSILON, AuditConfig, AuditInputs
from audit.figures import figures
from audit.index_evidence import gather_index_evidence
from audit.membership_bound import ReleaseBound, release_auc_bound
from audit.protection_cases import DeployedProtection, protection_cases
from audit.results import (
    adapter_sha256,
    audit_limitations,
    json_safe,
    privacy_budget,
    report_dict,
)
from audit.runner import AuditRunner
from audit.score_reconstruction_evidence import control_report, probe_gateway, setup_from
from audit.score_reconstruction_evidence import rows as score_rows
from embedding_core.errors import FedembedError
from embedding_core.version import PRODUCT_VERSION
from index_client.vector_space import VectorSpace
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
    EVIDENCE_SCORE_RECONSTRUCTION_CONTROL,
    EVIDENCE_SCORE_RECONSTRUCTION_COSINE,
    evaluate_audit,
    map_regulations,
)

__all__ = ["REPORT_VERSION", "TITLE", "audit_step_count", "run_audit"]

logger = logging.getLogger(__name__)

REPORT_VERSION = 1
TITLE = "fedembed privacy and bias audit"


def audit_step_count(inputs: AuditInputs, config: AuditConfig) -> int:
    """How many steps :func:`run_audit` announces for ``inputs`` and ``config``.

    Data, protections, inversion and attributes, the two membership games, bias, the
    report; the index scan when an index is given; score reconstruction when it probes.
    """
    return 7 + (inputs.index is not None) + (config.score_probes > 0)


def run_audit(
    inputs: AuditInputs, config: AuditConfig | None = None, *, progress: Progress | None = None
) -> dict[str, Any]:
    """Run the whole audit and return the report's data (``report.write_report`` renders it).

    Args:
        inputs: Model, adapter, index keyring, data and the policy.
        config: Sample sizes and budgets; :class:`AuditConfig` defaults if ``None``.
        progress: Called with each step's line, numbered (``audit [3/9] ...``), and the
            lines within it (the CLI prints them).
    """
    config = config or AuditConfig()
    started = time.perf_counter()
    steps = AuditSteps(audit_step_count(inputs, config), progress)
    runner = AuditRunner(inputs, config, steps)
    meta = runner.adapter.metadata if runner.adapter is not None else {}
    epsilon = float(meta.get("target_epsilon") or DEFAULT_EPSILON)
    delta = float(meta.get("target_delta") or DEFAULT_DELTA)
    deployed = DeployedProtection.from_files(inputs.dcpe_keyring, inputs.ckks_key)
    steps.step("protections: retrieval utility (SciFact nDCG@10) under each protection")
    cases = protection_cases(runner.data, runner.adapter, deployed, config)
    utility = runner.inversions(cases)
    raw = next(r for r in utility if r["protection"] == "raw")
    live = [r for r in utility if r["deployed"]]
    release = (
        release_auc_bound(meta)
        if runner.adapter is not None
        else ReleaseBound(None, None, None, None, "no bound: no adapter was given")
    )
    mia_auc, control_auc = runner.membership(epsilon, delta, release)
    bias_rows, bias_max = runner.bias()
    budget = privacy_budget(runner.adapter)
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
        steps.step("checking the index: encryption at rest, audit-log chain")
        scanned = gather_index_evidence(inputs.index)
        evidence.update(scanned.to_evidence())
        index_section.update(scanned.to_dict())
    probing: list[dict[str, Any]] = []
    if config.score_probes > 0:
        probes = {"at-rest": config.score_probes, "dcpe": config.score_probes,
                  "ckks": min(config.score_probes, config.score_probes_ckks)}  # fmt: skip
        ckks = f"up to {probes['ckks']}" if config.ckks_seconds is not None else probes["ckks"]
        steps.step(
            f"score reconstruction: {config.score_probes} probes at rest and under DCPE, "
            f"{ckks} to the CKKS collection, a control and a gateway with the default "
            "partner policy"
        )
        setup = setup_from(runner.data, runner.adapter, documents=config.score_documents,
                           probes=probes, seed=config.seed, space=VectorSpace.of(runner.encoder),
                           ckks_seconds=None if config.ckks_seconds is None
                           else config.ckks_seconds / 2)  # fmt: skip
        control = runner.add(control_report(setup))
        evidence[EVIDENCE_SCORE_RECONSTRUCTION_CONTROL] = control.metrics["mean_cosine"]
        try:
            partner = probe_gateway(setup, adapter=inputs.adapter, model=inputs.model,
                                    dcpe_keyring=inputs.dcpe_keyring, ckks_key=inputs.ckks_key,
                                    progress=steps)  # fmt: skip
        except FedembedError as exc:  # e.g. an adapter the gateway refuses to serve
            logger.warning("audit: score reconstruction not run: %s", exc.problem)
            partner = []
        for report in partner:
            runner.add(report)
        probing = score_rows([*partner, control])
        evidence[EVIDENCE_SCORE_RECONSTRUCTION_COSINE] = max(
            (r.metrics["mean_cosine"] for r in partner), default=None
        )
    policy = inputs.policy
    checks = evaluate_audit(policy.policy, evidence)
    steps.step("judging the evidence by the policy and drawing the figures")
    report_figures = figures(runner.reports, utility, bias_rows)
    results: dict[str, Any] = {
        "report_version": REPORT_VERSION,
        "title": TITLE,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "fedembed_version": PRODUCT_VERSION,
        "subject": {
            "model": {
                "id": runner.encoder.model_id,
                "fingerprint": runner.encoder.fingerprint,
                "encoder_backend": runner.encoder.backend,
                "space": runner.encoder.space,
            },
            "adapter": None
            if runner.adapter is None
            else {
                "path": str(inputs.adapter),
                "sha256": adapter_sha256(inputs.adapter),
                "epsilon": meta.get("target_epsilon"),
                "delta": meta.get("target_delta"),
                "rounds": meta.get("rounds"),
                "aggregation": meta.get("aggregation"),
                "membership_bound": release.to_dict(),
            },
            "index": index_section,
            "data": runner.data.sources,
        },
        "policy": policy.to_dict(),
        "attacks": [report_dict(r) for r in runner.reports],
        "evidence": evidence,
        "privacy_budget": budget,
        "bias": bias_rows,
        "utility": utility,
        "score_reconstruction": probing,
        "checks": [c.to_dict() for c in checks],
        "regulations": map_regulations(checks),
        "figures": report_figures,
        "limitations": audit_limitations(
            config,
            runner.adapter is not None,
            deployed,
            pool=runner.auditor.membership_name,
        ),
        "seconds": round(time.perf_counter() - started, 1),
        "json_sha256": None,
    }
    steps.detail(f"audit done in {time.perf_counter() - started:.0f} s")
    return dict(json_safe(results))
