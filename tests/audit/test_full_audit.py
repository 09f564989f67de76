"""A small audit end to end: every stage runs for real, on a few hundred real records.

The audit attacks a released adapter, the consortium's DCPE keyring, the gateway's CKKS
key and an index (``subject.py``) with a miniature of the shared data (``tiny_data.py``)
and small budgets, judges the evidence by a policy and writes the report. What is checked
is the pipeline: every check judged, the ledger reported and judged, a report whose hash
verifies. How strong the attacks are at full size is the slow CLI run's business
(``test_audit_cli.py``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from attacks.membership_game import AUC_BOUND, CONTROL
from audit.config import AuditConfig, AuditInputs
from audit.full_audit import run_audit
from embedding_core import Encoder
from policies import (
    AUDIT_CHECK_IDS,
    EVIDENCE_MIA_AUC,
    INDEX_CHECK_IDS,
    default_policy_path,
    load_policy,
)
from privacy.analysis import auc_bound, mu_for
from report.compliance_report import write_report
from tests.audit.subject import LEDGER, write_subject
from tests.audit.tiny_data import BANK_ROWS, CLAIMS, write_tiny_data

# Small budgets: no optimisation attack (its vocabulary is 22,000 words), the fewest shadow
# models the membership game plays with, one bias test. No member folders either: each
# batch the alignment attacker sees costs a fit, and the owner probe would add one.
SMALL = AuditConfig(
    bank_targets=None,
    claim_targets=None,
    optimisation_targets=0,
    vocabulary_min_zipf=None,
    word_map=False,
    noise_sigmas=(0.1,),
    kpa_pairs=100,
    mia_models=4,
    mia_targets=4,
    bias_tests=("weat7",),
    bias_mc_samples=500,
)
STRICT_EPSILON = 4.0  # below what the ledger's nodes spent (LEDGER): that check must fail

# The whole audit on small data (3 minutes on 2 cores): `make test-all` runs it.
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def audited(
    tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path, embedding_cache_dir: Path
) -> tuple[dict[str, Any], Path]:
    # Prepare: the subject, a small data folder, and a policy stricter on epsilon.
    work = tmp_path_factory.mktemp("small-audit")
    data = write_tiny_data(shared_data_dir, work / "data")
    subject = write_subject(work, data, Encoder.load())
    policy = work / "policy.toml"
    policy.write_text(
        default_policy_path()
        .read_text(encoding="utf-8")
        .replace("\nmax_epsilon = 8.0\n", f"\nmax_epsilon = {STRICT_EPSILON}\n"),
        encoding="utf-8",
    )
    inputs = AuditInputs(
        policy=load_policy(policy),
        adapter=subject.adapter,
        dcpe_keyring=subject.dcpe_keyring,
        ckks_key=subject.ckks_key,
        index=subject.index,
        data_dir=data,
        cache=embedding_cache_dir,
    )
    progress: list[str] = []
    # Execute
    results = run_audit(inputs, SMALL, progress=progress.append)
    write_report(results, work / "report")
    assert any("loading and embedding" in line for line in progress)
    # Each step announced once, numbered in order out of the 9 this audit has.
    numbered = [re.search(r"audit \[(\d+)/(\d+)\] \S", line) for line in progress]
    steps = [(int(m[1]), int(m[2])) for m in numbered if m]
    assert steps == [(n, 9) for n in range(1, 10)]
    return results, work / "report"


def test_the_report_files_verify_against_the_results(audited: tuple[dict[str, Any], Path]) -> None:
    results, out = audited
    digest = hashlib.sha256((out / "report.json").read_bytes()).hexdigest()
    assert (out / "report.json.sha256").read_text().split()[0] == digest
    assert digest in (out / "report.html").read_text(encoding="utf-8")
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    saved = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert saved["checks"] == results["checks"]


def test_every_check_is_judged_and_the_ledger_by_the_policy(
    audited: tuple[dict[str, Any], Path],
) -> None:
    results, _ = audited
    checks = {c["id"]: c for c in results["checks"]}
    assert set(AUDIT_CHECK_IDS) | set(INDEX_CHECK_IDS) <= set(checks)
    assert all(c["status"] in {"pass", "fail"} for c in checks.values())
    assert {b["node"]: b["epsilon"] for b in results["privacy_budget"]} == LEDGER
    assert checks["epsilon"]["status"] == "fail"  # 8.0 spent, the policy allows 4.0
    assert checks["encryption_at_rest"]["status"] == "pass"
    assert checks["audit_log_integrity"]["status"] == "pass"


def test_every_protection_is_attacked_on_the_small_data(
    audited: tuple[dict[str, Any], Path],
) -> None:
    results, _ = audited
    protections = [c["protection"] for c in results["subject"]["index"]["collections"]]
    assert protections == ["dcpe", "ckks"]
    utility = {row["protection"]: row for row in results["utility"]}
    assert "raw" in utility
    assert [row["protection"] for row in results["utility"] if row["deployed"]] == [
        "dcpe beta=1 ciphertext-only",
        "dcpe beta=1 known-plaintext n=100",
        "ckks search ciphertext-only",
        "ckks search known-plaintext n=100",
    ]
    attacks = {r["attack"] for r in results["attacks"]}
    assert {
        "nearest_neighbour_inversion",
        "attribute_inference",
        "membership_inference",
        "bias_audit",
    } <= attacks
    assert "optimisation_inversion" not in attacks  # not asked for
    records = {s["name"]: s["records"] for s in results["subject"]["data"]}
    assert records["banking77 test (private targets)"] == BANK_ROWS[1]
    assert records["scifact test claims (private targets)"] == CLAIMS


def test_the_membership_game_shows_the_releases_bound_and_a_no_signal_control(
    audited: tuple[dict[str, Any], Path],
) -> None:
    results, _ = audited
    # The release's bound: the worst node's epsilon 8.0 at delta 1e-5 (LEDGER), not the
    # simulated recipe's.
    bound = results["subject"]["adapter"]["membership_bound"]
    assert bound["epsilon"] == max(LEDGER.values())
    assert bound["auc_bound"] == pytest.approx(auc_bound(mu=mu_for(epsilon=8.0, delta=1e-5)))
    rows = [r for r in results["attacks"] if r["attack"] == "membership_inference"]
    dp = [r for r in rows if r["target"].startswith("DP-SGD")]
    assert dp
    assert all(r["metrics"][AUC_BOUND] == bound["auc_bound"] for r in dp)
    # One control per recipe, at chance (a 40-query pool: a wide margin), and no attack.
    controls = [r for r in rows if r["details"]["variant"] == CONTROL]
    assert len(controls) == 2
    assert all(abs(r["metrics"]["auc"] - 0.5) < 0.1 for r in controls)
    attacks = [r["metrics"]["auc"] for r in dp if r["details"]["variant"] != CONTROL]
    assert results["evidence"][EVIDENCE_MIA_AUC] == max(attacks)
