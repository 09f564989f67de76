"""``fedembed audit`` end to end: real attacks on real data, a policy verdict and the report.

The full-size run (``slow``, ``make test-all``) runs the CLI as a subprocess on the shared
data (quick profile), against an adapter with a federation-style privacy ledger and the
consortium DCPE keyring, then checks what a compliance officer receives: three files, a
verifiable JSON hash, every policy check, the per-node budget and attacks that are shown
to work before they are trusted. The default run checks the CLI's refusals, which come
before any attack; ``test_full_audit.py`` runs a small audit end to end in the default run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from embedding_core import Encoder
from policies import AUDIT_CHECK_IDS, INDEX_CHECK_IDS, default_policy_path
from tests.attacks.wordnet_files import write_wordnet
from tests.audit.subject import LEDGER, write_subject

REPO_ROOT = Path(__file__).resolve().parents[2]
# The full-size audit takes tens of minutes on a loaded 2-core machine; pytest-timeout's
# default (pyproject.toml) would cut it short.
FULL_RUN_LIMIT_S = 3600


def _fedembed(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``fedembed`` to completion (pytest-timeout's limit guards a hang, not load)."""
    return subprocess.run(
        [sys.executable, "-m", "fedembed", "-q", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        cwd=REPO_ROOT,
        check=False,
    )


@pytest.fixture(scope="module")
def audited(
    tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path, embedding_cache_dir: Path
) -> tuple[subprocess.CompletedProcess[str], Path]:
    # Prepare: a released adapter with its ledger, and the consortium keyring.
    work = tmp_path_factory.mktemp("audit")
    subject = write_subject(work, shared_data_dir, Encoder.load())
    wordnet = write_wordnet(work / "wordnet")
    # Execute
    result = _fedembed(
        "audit", "--quick", "--strict",
        "--out", str(work / "report"),
        "--adapter", str(subject.adapter),
        "--dcpe-key-file", str(subject.dcpe_keyring),
        "--ckks-key-file", str(subject.ckks_key),
        "--index", str(subject.index),
        "--members", str(subject.members),
        "--wordnet", str(wordnet),
        "--data-dir", str(shared_data_dir),
        "--cache-dir", str(embedding_cache_dir),
    )  # fmt: skip
    return result, work / "report"


@pytest.mark.slow
@pytest.mark.timeout(FULL_RUN_LIMIT_S)
def test_audit_writes_a_verifiable_report_and_fails_strictly_on_a_breach(
    audited: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, out = audited
    # Assert: DCPE does not stop inversion, so the default policy fails and --strict exits 1.
    assert result.returncode == 1, result.stderr[-3000:]
    printed = json.loads(result.stdout[result.stdout.index("{") :])
    data = (out / "report.json").read_bytes()
    assert hashlib.sha256(data).hexdigest() == printed["json_sha256"]
    assert (out / "report.json.sha256").read_text().split()[0] == printed["json_sha256"]
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF")
    assert printed["json_sha256"] in (out / "report.html").read_text(encoding="utf-8")
    assert "inversion" in printed["failed_checks"]
    assert "loading and embedding" in result.stderr  # progress lines


@pytest.mark.slow
@pytest.mark.timeout(FULL_RUN_LIMIT_S)
def test_report_covers_every_check_the_ledger_and_working_attacks(
    audited: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    _, out = audited
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    checks = {c["id"]: c for c in report["checks"]}
    # Every audit check is judged (nothing silently skipped).
    assert set(AUDIT_CHECK_IDS) | set(INDEX_CHECK_IDS) <= set(checks)
    assert all(c["status"] in {"pass", "fail"} for c in checks.values())
    # The attacks are strong where nothing protects: inversion and the MIA control work.
    evidence = report["evidence"]
    assert evidence["inversion_f1_raw"] > 0.3
    assert evidence["mia_auc_overfit_control"] > evidence["mia_auc"] > 0.5
    # The ledger is reported and judged; the policy file is pinned by its hash.
    assert {b["node"]: b["epsilon"] for b in report["privacy_budget"]} == LEDGER
    assert checks["epsilon"]["status"] == "pass"
    policy_hash = hashlib.sha256(default_policy_path().read_bytes()).hexdigest()
    assert report["policy"]["sha256"] == policy_hash
    protections = [c["protection"] for c in report["subject"]["index"]["collections"]]
    assert protections == ["dcpe", "ckks"]
    # Encrypted search is deployed: the store's view defeats every attack at no utility cost.
    utility = {row["protection"]: row for row in report["utility"]}
    ckks = utility["ckks search ciphertext-only"]
    assert ckks["deployed"]
    assert ckks["inversion_f1"] <= 0.1 < utility["raw"]["inversion_f1"]
    assert abs(ckks["ndcg10"] - utility["raw"]["ndcg10"]) < 0.005
    assert ckks["attribute_accuracy"] < 0.2 < utility["raw"]["attribute_accuracy"]
    attacks = {r["attack"] for r in report["attacks"]}
    assert {
        "optimisation_inversion",
        "nearest_neighbour_inversion",
        "attribute_inference",
        "membership_inference",
        "bias_audit",
    } <= attacks
    owner = [r for r in report["attacks"] if r["target"].startswith("scifact-docs owning-node")]
    assert len(owner) == len(report["utility"])  # one owner probe per protection
    assert {f["name"] for f in report["figures"]} >= {"privacy_utility", "membership_roc"}
    assert {r["framework"] for r in report["regulations"]} >= {"GDPR", "EU AI Act", "HIPAA"}
    # The index is encrypted at rest and its audit chain verifies (HIPAA 164.312(b), (c)).
    assert checks["encryption_at_rest"]["status"] == "pass"
    assert checks["audit_log_integrity"]["status"] == "pass"
    assert report["subject"]["index"]["store"]["encrypted_fraction"] == 1.0
    # The quick profile's smaller corpus is stated where a reader compares nDCG.
    corpus = [s for s in report["subject"]["data"] if s["name"].startswith("scifact corpus")]
    assert corpus[0]["records"] == 1500
    assert "sample" in corpus[0]["name"]
    assert any("1500-document SciFact corpus" in note for note in report["limitations"])
    # The attacker's word map learned from the WordNet glosses it was given, as stated.
    glosses = [s for s in report["subject"]["data"] if s["name"].startswith("wordnet")]
    assert glosses[0]["records"] == 5
    optimisation = [r for r in report["attacks"] if r["attack"] == "optimisation_inversion"]
    assert {r["details"]["word_map_glosses"] for r in optimisation} == {5}
    assert all("WordNet's glosses" in r["threat_model"] for r in optimisation)


def test_a_malformed_policy_is_a_clear_error_before_any_attack(tmp_path: Path) -> None:
    # Prepare
    policy = tmp_path / "policy.toml"
    policy.write_text(default_policy_path().read_text().replace("max_mia_auc = ", "max_mia_aux = "))
    # Execute
    result = _fedembed("audit", "--out", str(tmp_path / "r"), "--policy", str(policy))
    # Assert
    assert result.returncode == 2
    assert "max_mia_aux" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "r").exists()


def test_a_missing_adapter_is_a_clear_error(tmp_path: Path) -> None:
    result = _fedembed("audit", "--out", str(tmp_path / "r"), "--adapter", str(tmp_path / "no"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(tmp_path / "no") in result.stderr


def test_a_wordnet_folder_without_its_files_is_a_clear_error(tmp_path: Path) -> None:
    result = _fedembed("audit", "--out", str(tmp_path / "r"), "--wordnet", str(tmp_path))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "not a WordNet database folder" in result.stderr
    assert not (tmp_path / "r").exists()
