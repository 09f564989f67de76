"""The audit results' supporting sections: privacy budget, provenance and limitations.

Helpers that turn what the audit ran into parts of the results dict the compliance
report renders: each attack report as JSON (``report_dict``), the per-node privacy
ledger of the adapter (``privacy_budget``), the adapter's digest (``adapter_sha256``),
the limitations that qualify the findings (``audit_limitations``), and ``json_safe``,
which makes the whole dict valid JSON.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from attacks.base import AttackReport
from audit.config import AuditConfig
from audit.protection_cases import DeployedProtection
from embedding_core.adapter import Adapter

__all__ = ["adapter_sha256", "audit_limitations", "json_safe", "privacy_budget", "report_dict"]


def report_dict(report: AttackReport) -> dict[str, Any]:
    """``report`` as a dict for the results, without its ROC curve details (``roc_*``)."""
    row = asdict(report)
    row["details"] = {k: v for k, v in report.details.items() if not k.startswith("roc_")}
    return row


def privacy_budget(adapter: Adapter | None) -> list[dict[str, Any]]:
    """The adapter's per-node epsilon ledger, one row per node; empty without an adapter."""
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


def adapter_sha256(folder: Path | None) -> str | None:
    """SHA-256 of the adapter's manifest and weights files together."""
    if folder is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def audit_limitations(
    config: AuditConfig,
    adapter: bool,
    deployed: DeployedProtection,
    *,
    pool: str | None = None,
) -> list[str]:
    """The notes that qualify the audit's findings for this ``config`` and deployment.

    Args:
        config: The budgets the audit ran with.
        adapter: Whether an adapter was audited.
        deployed: The deployed protection (its key is ``None`` without a keyring).
        pool: The auditor's membership records file, when the game played on them.
    """
    records = f"the auditor's records ({pool})" if pool else "SciFact's public train pairs"
    notes = [
        f"The optimisation inversion attack ran on the first {config.optimisation_targets} "
        "targets of each set (it queries the encoder thousands of times per target); the "
        "nearest-neighbour attack and the probes ran on every sampled target.",
        f"Membership inference trains {config.mia_models} shadow and "
        f"{config.mia_targets} target adapters per recipe on {records}, "
        "the targets apart from the shadows on independently drawn halves (Carlini et al. "
        "2022), with the full-batch DP-SGD recipe at the adapter's epsilon, on adapters of "
        "the released adapter's shape; it measures the recipe, not the federation's exact "
        "per-node schedule. Each game's no-signal control (online LiRA on confidences "
        "shuffled across models) shows the evaluation at chance (AUC 0.5). The DP rows' "
        "bound on any attack's AUC (key metric auc_bound_gdp) is the release's own, read "
        "from its manifest (subject.adapter.membership_bound says how, or why there is "
        "none); the simulated recipe's bound is the detail auc_bound_recipe.",
        "Attribute inference is played by a static attacker (probe trained on raw public "
        "embeddings) and an adaptive one (probe trained on public embeddings under the same "
        "protection); the check judges the larger advantage. Neither is the strongest "
        "possible attacker.",
        "The bag-of-words inverter (Song and Raghunathan 2020) is measured in the benchmarks "
        "(benchmarks/RESULTS.md), not here: it was weaker than the two attacks shown.",
        "The keyed-rotation rows measure a protection that is not deployed: a secret random "
        "rotation keeps every inner product (no retrieval loss) and leaves ciphertext-only "
        "attackers at chance, but a known-plaintext attacker with about as many pairs as "
        "dimensions undoes it exactly.",
        "The CKKS-search rows measure encrypted search: the store holds documents as CKKS "
        "ciphertexts under the query gateway's key and scores encrypted queries without "
        "decrypting (exact nDCG, exhaustive scoring). Their attackers read the ciphertext "
        "words at each document's slots; the scheme's security rests on ring-LWE, which "
        "this measurement illustrates, not proves.",
        "Passing checks are evidence about these attacks on these data, not a proof that no "
        "other attack succeeds; the DP guarantee is the only worst-case statement.",
    ]
    if config.corpus_documents is not None:
        notes.append(
            f"Retrieval utility was measured on a {config.corpus_documents}-document SciFact "
            "corpus (every judged document plus a sample): its nDCG@10 is higher than on the "
            "full corpus; compare protections with each other, not with published numbers."
        )
    if config.ckks_seconds is not None:
        notes.append(
            f"The CKKS checks were sized to this machine ({config.ckks_seconds:g} s): the "
            "CKKS utility on a seeded sample of the test claims (its row's ndcg10_claims; the "
            "value is raw's nDCG@10 on every claim less the drop on the sample), the CKKS "
            "collection's probes as many as half that time allowed (its row's "
            "probes_attempted). A faster machine takes larger samples of the same draw."
        )
    if not adapter:
        notes.append("No adapter was given: no fine-tuned model, privacy ledger or DP recipe.")
    if deployed.key is None and deployed.ckks_key is None:
        notes.append(
            "No DCPE keyring or CKKS key was given: the deployed protection is encryption at "
            "rest only, which protects stolen disks but not vectors seen by the running index "
            "process."
        )
    return notes
