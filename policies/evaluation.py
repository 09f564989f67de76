"""Evaluate audit evidence, partner grants and the privacy ledger against a policy.

A check passes when its value is within the threshold; a value equal to the threshold
passes. The inversion and membership-inference checks need their controls: a result
that would pass while its control (attack strength on raw embeddings, AUC on an
overfitted model) did not pass is inconclusive and reported as ``not_evaluated``.

The index checks (encryption at rest, audit-log integrity) are reported only when the
evidence names their keys, i.e. when the audit was given an index data directory; the
audit-log check applies only while the policy requires an audit log
(``access.audit_log_required``). Likewise the score-reconstruction checks (a partner key
with the gateway's defaults probing a gateway the audit started, and its exact-score
control) are reported only when the evidence names their keys.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policies.checks import (
    ALL_EVIDENCE_KEYS,
    AUDIT_CHECK_IDS,
    AUDIT_LOG_INTACT,
    CHECK_ATTRIBUTE,
    CHECK_AUDIT_LOG,
    CHECK_BIAS,
    CHECK_DELTA,
    CHECK_ENCRYPTION_AT_REST,
    CHECK_EPSILON,
    CHECK_INVERSION,
    CHECK_INVERSION_STRENGTH,
    CHECK_MIA,
    CHECK_MIA_CONTROL,
    CHECK_PRIVACY_BUDGET,
    CHECK_SCORE_RECONSTRUCTION,
    CHECK_SCORE_RECONSTRUCTION_CONTROL,
    CHECK_UTILITY,
    ENCRYPTED_PROTECTIONS,
    EVIDENCE_ATTRIBUTE_ADVANTAGE,
    EVIDENCE_AUDIT_LOG_INTACT,
    EVIDENCE_BIAS_MAX_ABS_EFFECT_SIZE,
    EVIDENCE_DELTA_MAX_NODE,
    EVIDENCE_EPSILON_MAX_NODE,
    EVIDENCE_INDEX_ENCRYPTED_FRACTION,
    EVIDENCE_INVERSION_F1_PROTECTED,
    EVIDENCE_INVERSION_F1_RAW,
    EVIDENCE_KEYS,
    EVIDENCE_MIA_AUC,
    EVIDENCE_MIA_AUC_OVERFIT_CONTROL,
    EVIDENCE_RETRIEVAL_NDCG10_DROP,
    EVIDENCE_SCORE_RECONSTRUCTION_CONTROL,
    EVIDENCE_SCORE_RECONSTRUCTION_COSINE,
    INDEX_CHECK_IDS,
    INDEX_EVIDENCE_KEYS,
    METRIC_PRIVACY_BUDGET_MAX_EPSILON,
    QUERY_CHECK_IDS,
    QUERY_EVIDENCE_KEYS,
    SCORE_RECONSTRUCTION_CONTROL,
    STATUS_FAIL,
    STATUS_NOT_EVALUATED,
    STATUS_PASS,
    Comparison,
    PolicyCheck,
    Status,
)
from policies.errors import PolicyError
from policies.model import Policy

__all__ = ["check_partner_grant", "check_privacy_budget", "evaluate_audit"]

logger = logging.getLogger(__name__)


def _pct(x: float) -> str:
    return f"{x:.0%}" if abs(x * 100 - round(x * 100)) < 1e-9 else f"{x:.1%}"


def _points(x: float) -> str:
    return f"{x * 100:.3g} percentage points"


def _num(x: float) -> str:
    return f"{x:.3g}"


def _share(x: float) -> str:
    """A percentage that never rounds a shortfall up to 100%."""
    return _pct(math.floor(x * 1000) / 1000 if x < 1 else x)


def _intact(x: float) -> str:
    return "intact" if x >= AUDIT_LOG_INTACT else "broken"


@dataclass(frozen=True)
class _Spec:
    id: str
    title: str
    metric: str
    comparison: Comparison
    threshold: Callable[[Policy], float]
    fmt: Callable[[float], str]
    measured: str  # "{v}" is the formatted value
    limit: str  # "{t}" is the formatted threshold
    if_pass: str
    if_fail: str
    if_missing: str
    control: str | None = None  # id of the check that shows the attack works
    applies: Callable[[Policy], bool] | None = None  # None: always; else when true
    if_not_required: str = ""  # why it does not apply (when ``applies`` is false)


_SPECS: tuple[_Spec, ...] = (
    _Spec(CHECK_INVERSION_STRENGTH, "Inversion attack strength (control)",
          EVIDENCE_INVERSION_F1_RAW, ">=", lambda p: p.audit.min_attack_strength_f1, _pct,
          "on unprotected (raw) embeddings the inversion attacks recovered {v} of content words",
          "the policy requires at least {t} to show the attacks are strong enough to matter",
          "the attacks work, so a low score on protected embeddings is meaningful evidence",
          "the attacks are too weak to be informative, so the inversion result is inconclusive;"
          " rerun the audit with a stronger attack",
          "no inversion attack was run on raw embeddings"),
    _Spec(CHECK_INVERSION, "Embedding inversion (text recovery)",
          EVIDENCE_INVERSION_F1_PROTECTED, "<=", lambda p: p.audit.max_inversion_f1, _pct,
          "the strongest inversion attack recovered {v} of content words from protected "
          "embeddings", "the policy allows at most {t}",
          "someone who obtains the stored embeddings cannot reconstruct a meaningful part of "
          "the original text",
          "someone who obtains the stored embeddings could reconstruct too much of the "
          "original text; use a stronger protection (e.g. DCPE with a larger beta)",
          "no inversion attack was run on protected embeddings",
          control=CHECK_INVERSION_STRENGTH),
    _Spec(CHECK_MIA_CONTROL, "Membership inference (overfit control)",
          EVIDENCE_MIA_AUC_OVERFIT_CONTROL, ">=", lambda p: p.audit.min_mia_control_auc, _num,
          "on a deliberately overfitted control model the membership attack reached AUC {v}",
          "the policy requires at least {t}",
          "the attack detects membership when it leaks, so a low AUC on the real model is "
          "meaningful", "the attack cannot even detect membership in an overfitted model, so "
          "the membership-inference result is inconclusive",
          "no overfitted control was attacked"),
    _Spec(CHECK_MIA, "Membership inference",
          EVIDENCE_MIA_AUC, "<=", lambda p: p.audit.max_mia_auc, _num,
          "the membership-inference attack told training records from unseen ones with AUC {v}"
          " (0.5 is guessing)", "the policy allows at most {t}",
          "the model does not reveal, beyond a marginal signal, whether a person's record was "
          "used for training",
          "an attacker could tell better than allowed whether a person's record was used for "
          "training; retrain at the epsilon `fedembed policy plan` gives (its proven bound "
          "meets this limit)",
          "no membership-inference attack was run", control=CHECK_MIA_CONTROL),
    _Spec(CHECK_ATTRIBUTE, "Attribute inference",
          EVIDENCE_ATTRIBUTE_ADVANTAGE, "<=", lambda p: p.audit.max_attribute_advantage,
          _points, "an attribute-inference attack guessed a sensitive attribute {v} more "
          "accurately than the base rate", "the policy allows at most {t}",
          "the embeddings reveal little about the sensitive attribute beyond base rates",
          "the embeddings reveal a sensitive attribute noticeably better than guessing; apply "
          "a stronger protection before sharing them",
          "no attribute-inference attack was run"),
    _Spec(CHECK_BIAS, "Social bias (WEAT effect size)",
          EVIDENCE_BIAS_MAX_ABS_EFFECT_SIZE, "<=", lambda p: p.audit.max_abs_effect_size, _num,
          "the largest absolute bias effect size (Cohen's d, sample sd) among the tests "
          "significant after Holm, in either direction (two-sided p), was {v}",
          "the policy allows at most {t} (0.8 is conventionally 'large')",
          "no association shown significant reaches the strength the policy forbids (tests "
          "marked underpowered in the bias table can show none)",
          "at least one tested stereotype association is stronger than allowed; review the "
          "bias table before deployment", "no bias test was run"),
    _Spec(CHECK_EPSILON, "Differential privacy: epsilon",
          EVIDENCE_EPSILON_MAX_NODE, "<=", lambda p: p.audit.max_epsilon, _num,
          "the largest privacy budget (epsilon) spent by any node was {v}",
          "the policy allows at most {t} (smaller is stronger privacy)",
          "every node's formal privacy guarantee is at least as strong as required",
          "at least one node spent more privacy budget than allowed; its guarantee is weaker "
          "than the policy promises", "no differentially private training was recorded"),
    _Spec(CHECK_DELTA, "Differential privacy: delta",
          EVIDENCE_DELTA_MAX_NODE, "<=", lambda p: p.audit.max_delta, _num,
          "the largest failure probability (delta) of any node's guarantee was {v}",
          "the policy allows at most {t}",
          "the chance that the privacy guarantee does not hold is within the policy",
          "the chance that the privacy guarantee does not hold is higher than accepted",
          "no differentially private training was recorded"),
    _Spec(CHECK_UTILITY, "Retrieval quality under protection",
          EVIDENCE_RETRIEVAL_NDCG10_DROP, "<=", lambda p: p.audit.max_ndcg10_drop, _num,
          "privacy protections lowered retrieval quality (nDCG@10) by {v} points",
          "the policy allows a drop of at most {t} points",
          "search quality stays acceptable with the protections on",
          "the protections degrade search quality more than the consortium accepted; revisit "
          "the protection parameters", "retrieval quality was not compared"),
)  # fmt: skip

# Judged only when the evidence names their key (the audit was given an index directory).
_INDEX_SPECS: tuple[_Spec, ...] = (
    _Spec(CHECK_ENCRYPTION_AT_REST, "Encryption at rest (index files)",
          EVIDENCE_INDEX_ENCRYPTED_FRACTION, ">=",
          lambda p: p.audit.min_index_encrypted_fraction, _share,
          "{v} of the index's collection files are AES-256-GCM envelopes (authenticated "
          "encryption)", "the policy requires at least {t}",
          "whoever copies the index files gets only ciphertext, and any alteration of them "
          "is detected when the index opens them",
          "some index files are not encrypted, so whoever copies them may read or silently "
          "alter what they hold; the report lists them under subject.index: remove them "
          "and keep only what the index service wrote",
          "no index data directory was audited (run the audit with --index DIR) or its "
          "store holds no collection files"),
    _Spec(CHECK_AUDIT_LOG, "Audit log integrity (hash chain)",
          EVIDENCE_AUDIT_LOG_INTACT, ">=", lambda p: AUDIT_LOG_INTACT, _intact,
          "the hash chain of the index's audit log is {v}",
          "the policy requires an {t} log of every index request (access.audit_log_required)",
          "no recorded index request was edited, removed or inserted since it was written",
          "audit-log records were edited, removed or inserted, or the log was deleted, so "
          "the record of index activity cannot be trusted; the report names the first bad "
          "line: compare the log with a backup and with the head hash recorded earlier",
          "no audit log was verified (no --index given, or the index data directory holds "
          "no audit log, e.g. on a store-only host)",
          applies=lambda p: p.access.audit_log_required,
          if_not_required="the policy does not require an audit log "
          "(access.audit_log_required = false)"),
)  # fmt: skip

# Judged only when the evidence names their key (the audit probed a gateway it started).
_QUERY_SPECS: tuple[_Spec, ...] = (
    _Spec(CHECK_SCORE_RECONSTRUCTION_CONTROL, "Score reconstruction (exact-score control)",
          EVIDENCE_SCORE_RECONSTRUCTION_CONTROL, ">=", lambda p: SCORE_RECONSTRUCTION_CONTROL,
          _num, "given exact scores and vector probes, the reconstruction reached mean cosine "
          "{v} to the stored vectors", "the attack must reach at least {t} there",
          "the attack rebuilds stored vectors when scores leak, so a low value under the "
          "deployed policy is meaningful",
          "the attack cannot rebuild vectors even from exact scores, so the score "
          "reconstruction result is inconclusive",
          "no score reconstruction was run"),
    _Spec(CHECK_SCORE_RECONSTRUCTION, "Score reconstruction (partner probing the gateway)",
          EVIDENCE_SCORE_RECONSTRUCTION_COSINE, "<=",
          lambda p: p.audit.max_score_reconstruction_cosine, _num,
          "a partner key issued with the gateway's defaults rebuilt stored document vectors "
          "from its query answers with mean cosine {v} (worst collection kind)",
          "the policy allows at most {t}",
          "a partner cannot rebuild the stored vectors from what the gateway answers",
          "a partner can rebuild stored vectors from what the gateway answers; release "
          "less (smaller top-k caps, smaller query budgets) or grant fewer partners",
          "no score reconstruction was run", control=CHECK_SCORE_RECONSTRUCTION_CONTROL),
)  # fmt: skip

if (
    tuple(spec.id for spec in _SPECS) != AUDIT_CHECK_IDS
    or {s.metric for s in _SPECS} != set(EVIDENCE_KEYS)
    or tuple(spec.id for spec in _INDEX_SPECS) != INDEX_CHECK_IDS
    or tuple(s.metric for s in _INDEX_SPECS) != INDEX_EVIDENCE_KEYS
    or tuple(spec.id for spec in _QUERY_SPECS) != QUERY_CHECK_IDS
    or tuple(s.metric for s in _QUERY_SPECS) != QUERY_EVIDENCE_KEYS
):  # pragma: no cover - guards the two tables against drifting apart
    raise RuntimeError("policies: check specs and policies.checks constants disagree")


def _number(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PolicyError(
            f"{what} is {value!r}, not a finite number",
            expected="a finite number, or null when that part of the audit was not run",
            fix="correct the audit runner output",
        )
    return float(value)


def _explain(spec: _Spec, value: float | None, threshold: float, status: str, why: str) -> str:
    limit = spec.limit.format(t=spec.fmt(threshold))
    if value is None:
        return f"Not evaluated: {spec.if_missing}; {limit}."
    measured = spec.measured.format(v=spec.fmt(value))
    if status == STATUS_PASS:
        verdict = f"Pass: {spec.if_pass}"
    elif status == STATUS_FAIL:
        verdict = f"Fail: {spec.if_fail}"
    else:
        verdict = f"Inconclusive, so not evaluated: {why}"
    text = f"{measured}; {limit}. {verdict}."
    return text[0].upper() + text[1:]


def evaluate_audit(policy: Policy, evidence: Mapping[str, float | None]) -> list[PolicyCheck]:
    """Compare audit evidence with the policy's ``[audit]`` thresholds.

    Args:
        policy: The policy.
        evidence: The ``evidence`` dict of the audit results contract; a missing key or
            ``None`` means that part of the audit was not run. The index keys
            (:data:`~policies.checks.INDEX_EVIDENCE_KEYS`) are the exception: a missing
            key leaves its check out (no index was audited), ``None`` reports it as not
            evaluated.

    Returns:
        One check per key of :data:`~policies.checks.EVIDENCE_KEYS`, in a fixed order
        (controls before what they control), then one per index key present in
        ``evidence``, then one per score-reconstruction key present
        (:data:`~policies.checks.QUERY_EVIDENCE_KEYS`).

    Raises:
        PolicyError: An evidence key is unknown or a value is not a finite number.
    """
    unknown = sorted(set(evidence) - set(ALL_EVIDENCE_KEYS))
    if unknown:
        raise PolicyError(
            f"unknown audit evidence keys {unknown}",
            expected=f"only the keys {', '.join(ALL_EVIDENCE_KEYS)}",
            fix="rename the keys to those of the audit results contract",
        )
    checks: dict[str, PolicyCheck] = {}
    index_specs = tuple(spec for spec in (*_INDEX_SPECS, *_QUERY_SPECS) if spec.metric in evidence)
    for spec in (*_SPECS, *index_specs):
        raw = evidence.get(spec.metric)
        value = None if raw is None else _number(raw, f"evidence {spec.metric!r}")
        checks[spec.id] = _judge(spec, policy, value, checks)
    result = list(checks.values())
    logger.info(
        "audit checks: %s",
        ", ".join(f"{c.id}={c.status}" for c in result),
    )
    return result


def _judge(
    spec: _Spec, policy: Policy, value: float | None, done: Mapping[str, PolicyCheck]
) -> PolicyCheck:
    """One check of ``value`` against ``spec``; ``done`` holds the controls judged before."""
    threshold = spec.threshold(policy)
    why = ""
    if spec.applies is not None and not spec.applies(policy):
        explanation = f"Not evaluated: {spec.if_not_required}."
        return PolicyCheck(
            spec.id, spec.title, spec.metric, value, spec.comparison, threshold,
            STATUS_NOT_EVALUATED, explanation,
        )  # fmt: skip
    if value is None:
        status: Status = STATUS_NOT_EVALUATED
    elif (value <= threshold) if spec.comparison == "<=" else (value >= threshold):
        status = STATUS_PASS
        control = done.get(spec.control) if spec.control else None
        if control is not None and control.status != STATUS_PASS:
            status = STATUS_NOT_EVALUATED
            outcome = "was not run" if control.value is None else "did not pass"
            why = (
                f"the control check '{control.id}' {outcome}, so this low value does "
                "not show that the protection works"
            )
    else:
        status = STATUS_FAIL
    explanation = _explain(spec, value, threshold, status, why)
    return PolicyCheck(
        spec.id, spec.title, spec.metric, value, spec.comparison, threshold, status,
        explanation,
    )  # fmt: skip


def check_partner_grant(
    policy: Policy,
    *,
    top_k_cap: int,
    requests_per_minute: float,
    collections_protection: Mapping[str, str],
) -> list[str]:
    """Violations of the ``[access]`` policy by a partner grant (empty list: allowed).

    Args:
        policy: The policy.
        top_k_cap: Largest k the partner may request per query.
        requests_per_minute: Sustained request rate granted to the partner.
        collections_protection: Collection name to its protection (e.g. ``"dcpe"``,
            ``"at-rest"``) for every collection the partner may query.

    Returns:
        One plain-English sentence per violation.
    """
    access = policy.access
    violations: list[str] = []
    if top_k_cap < 1 or top_k_cap > access.max_top_k:
        violations.append(
            f"top-k cap {top_k_cap} is outside 1..{access.max_top_k} (access.max_top_k)"
        )
    if not requests_per_minute > 0 or requests_per_minute > access.max_requests_per_minute:
        violations.append(
            f"rate {requests_per_minute:g} requests/minute is not in (0, "
            f"{access.max_requests_per_minute:g}] (access.max_requests_per_minute)"
        )
    if access.require_encrypted_collections_for_partners:
        for name, protection in sorted(collections_protection.items()):
            if protection not in ENCRYPTED_PROTECTIONS:
                violations.append(
                    f"collection '{name}' is protected with '{protection}', but partners may "
                    f"only be granted {sorted(ENCRYPTED_PROTECTIONS)} collections "
                    "(access.require_encrypted_collections_for_partners)"
                )
    return violations


def check_privacy_budget(policy: Policy, budgets: Sequence[Mapping[str, Any]]) -> PolicyCheck:
    """Check the privacy ledger against ``[privacy]`` (per-node epsilon and delta).

    Args:
        policy: The policy.
        budgets: The ``privacy_budget`` items of the audit results contract, each with
            ``node``, ``epsilon`` and ``delta`` (``rounds`` and ``refused`` are ignored:
            a refused round is the ledger enforcing the budget).

    Returns:
        A check that fails when any node spent more epsilon than
        ``privacy.max_epsilon_per_node`` or has a delta above ``privacy.target_delta``.

    Raises:
        PolicyError: An item lacks ``node``/``epsilon``/``delta`` or holds a non-number.
    """
    cap, target_delta = policy.privacy.max_epsilon_per_node, policy.privacy.target_delta
    title = "Privacy ledger: per-node budget"
    limit = (
        f"the policy allows each node epsilon at most {cap:g} with delta at most {target_delta:g}"
    )
    if not budgets:
        return PolicyCheck(
            CHECK_PRIVACY_BUDGET, title, METRIC_PRIVACY_BUDGET_MAX_EPSILON, None, "<=", cap,
            STATUS_NOT_EVALUATED, f"Not evaluated: the privacy ledger is empty; {limit}.",
        )  # fmt: skip
    over: list[str] = []
    largest = 0.0
    for item in budgets:
        missing = [k for k in ("node", "epsilon", "delta") if k not in item]
        if missing:
            raise PolicyError(
                f"privacy-ledger entry {dict(item)!r} lacks {missing}",
                expected="entries with node, epsilon, delta (and rounds, refused)",
                fix="pass the privacy_budget list of the audit results",
            )
        epsilon = _number(item["epsilon"], f"epsilon of node {item['node']!r}")
        delta = _number(item["delta"], f"delta of node {item['node']!r}")
        largest = max(largest, epsilon)
        if epsilon > cap or delta > target_delta:
            over.append(f"{item['node']} (epsilon {epsilon:g}, delta {delta:g})")
    measured = f"{len(budgets)} node(s) recorded, the largest epsilon being {largest:g}"
    if over:
        explanation = (
            f"{measured}; {limit}. Fail: {', '.join(over)} exceeded the per-node budget, so "
            "their records are less protected than the policy promises."
        )
        status: Status = STATUS_FAIL
    else:
        explanation = f"{measured}; {limit}. Pass: every node stayed within its privacy budget."
        status = STATUS_PASS
    return PolicyCheck(
        CHECK_PRIVACY_BUDGET, title, METRIC_PRIVACY_BUDGET_MAX_EPSILON, largest, "<=", cap,
        status, explanation[0].upper() + explanation[1:],
    )  # fmt: skip
