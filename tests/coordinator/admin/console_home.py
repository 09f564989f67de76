"""The consortium home the console tests read, and signing in to the console.

The home is written as the consortium writes it: kits by `coordinator provision` (one
member revoked by the kits' enrolment), run folders as the admin API and the ServerApp
leave them (run.json, federation_ledger.json, central_metrics.json, history.json, the
published adapter), a model version registered by the model registry, and audit reports
as `fedembed audit` writes them (views recorded by the audit jobs' `record_views`).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from coordinator.admin.audit_reports import record_views
from coordinator.admin.console import CONTENT_SECURITY_POLICY
from coordinator.admin.home import ConsortiumHome
from coordinator.admin.model_registry import ModelRegistry
from coordinator.admin.settings import AdminSettings
from coordinator.run_folder import ADAPTER_DIR, CENTRAL_METRICS_FILE, HISTORY_FILE, LEDGER_FILE
from embedding_core.adapter import Adapter
from kits.enrolment import revoke_member
from kits.provisioning import provision
from privacy import Observer, covered_by

SCRIPT = "<script>alert(1)</script>"
MEMBERS = ("hospital-a", "bank_b", "clinic-c")
REVOKED = "clinic-c"
NDCG = {0: 0.512, 1: 0.534, 2: 0.561, 3: 0.587}
PAGES = (
    "/console/",
    "/console/nodes",
    "/console/runs",
    "/console/runs/run-ok",
    "/console/budgets",
    "/console/models",
    "/console/partners",
    "/console/audit",
)


def _json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _node_report(epsilon: float) -> dict[str, Any]:
    """A node's answer as the federation ledger records it (its total, the charge)."""
    return {
        "answered": True,
        "epsilon": epsilon,
        "noise_multiplier": 20.0,
        "sample_rate": 1.0,
        "steps": 1,
    }


def _ledger(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """A federation ledger in the form FederationLedger.to_dict writes."""
    per_node: dict[str, float] = {}
    entries = []
    for number, nodes in enumerate(rounds, start=1):
        for node, report in nodes.items():
            if "epsilon" in report:
                per_node[node] = report["epsilon"]
        released = any("error" not in report for report in nodes.values())
        entries.append(
            {
                "round": number,
                "sampled": len(nodes),
                "released": released,
                "nodes": nodes,
                "node_level_epsilon": None,
            }
        )
    return {
        "sample_level": {
            "observer": Observer.FELLOW_MEMBER.value,
            "holds_for": [o.value for o in covered_by(Observer.FELLOW_MEMBER)],
            "per_node_epsilon": per_node,
        },
        "node_level": {"noise_multiplier": 0.0, "epsilon": None},
        "refusals": [
            {"round": e["round"], "node": n, "reason": r["error"]}
            for e in entries
            for n, r in e["nodes"].items()
            if "error" in r
        ],
        "rounds": entries,
    }


def _run_folder(
    home: ConsortiumHome,
    name: str,
    *,
    state: str,
    rounds_total: int,
    ledger: dict[str, Any],
    history: dict[str, Any],
    metrics: dict[int, float] | None,
) -> Path:
    """A run folder as the admin API (run.json) and the ServerApp (the rest) leave it."""
    folder = home.runs / name
    folder.mkdir(parents=True)
    config = {
        "num-server-rounds": rounds_total,
        "out-dir": str(folder),
        "coordinator-kit": str(home.coordinator_kit),
        "run-tag": name,
        "eval-dataset": "scifact" if metrics is not None else "none",
    }
    _json(
        folder / "run.json",
        {
            "name": name,
            "request": {"name": name, "run_config": {"num-server-rounds": rounds_total}},
            "run_config": config,
            "rounds_total": rounds_total,
            "flower_run_id": 4242 if state == "succeeded" else 4343,
            "created": "2026-12-01T10:00:00+00:00"
            if state == "succeeded"
            else "2026-12-02T09:00:00+00:00",
            "submitted": "2026-12-01T10:00:01+00:00",
            "finished": "2026-12-01T10:20:00+00:00",
            "state": state,
            "flower_status": f"finished:{'completed' if state == 'succeeded' else 'failed'}",
        },
    )
    _json(folder / LEDGER_FILE, ledger)
    _json(folder / HISTORY_FILE, history)
    if metrics is not None:
        rounds = {str(r): {"ndcg@10": v, "recall@100": v + 0.2} for r, v in metrics.items()}
        _json(folder / CENTRAL_METRICS_FILE, {"dataset": "scifact", "rounds": rounds})
    return folder


def _audit_report(home: ConsortiumHome, job: str, *, tamper: bool) -> None:
    """A report as `fedembed audit` writes it, its views recorded; optionally changed after."""
    folder = home.audit / job
    folder.mkdir(parents=True)
    record = json.dumps({"title": "fedembed privacy and bias audit", "verdict": "PASS"}).encode()
    digest = hashlib.sha256(record).hexdigest()
    (folder / "report.json").write_bytes(record)
    (folder / "report.json.sha256").write_text(f"{digest}  report.json\n", encoding="ascii")
    (folder / "report.html").write_text(f"<p>report.json SHA-256 {digest}</p>", encoding="utf-8")
    (folder / "report.pdf").write_bytes(b"%PDF-1.4\n% report\n")
    record_views(folder)
    if tamper:
        (folder / "report.html").write_text("<p>edited afterwards</p>", encoding="utf-8")


def prepare_consortium(settings: AdminSettings) -> dict[str, Any]:
    """A consortium home with members, two runs, a model version and two audit reports."""
    home = settings.consortium
    provision(home.kits, node_ids=list(MEMBERS))
    revoke_member(home.kits, REVOKED)
    ok = _run_folder(
        home,
        "run-ok",
        state="succeeded",
        rounds_total=3,
        ledger=_ledger(
            [
                {"hospital-a": _node_report(1.0), "bank_b": _node_report(1.5)},
                {"hospital-a": _node_report(2.0), "bank_b": _node_report(3.0)},
                {"hospital-a": _node_report(3.0), "bank_b": _node_report(7.0)},
            ]
        ),
        history={
            "status": "succeeded",
            "per_node_epsilon": {"hospital-a": 3.0, "bank_b": 7.0},
            "final": {"ndcg@10": NDCG[3]},
        },
        metrics=NDCG,
    )
    Adapter(8, kind="shift").save(
        ok / ADAPTER_DIR, base_model_id="all-MiniLM-L6-v2", base_model_fingerprint="f" * 64
    )
    _run_folder(
        home,
        "run-empty",
        state="failed",
        rounds_total=2,
        ledger=_ledger(
            [{"hospital-a": {"error": "privacy budget exhausted"}, SCRIPT: {"error": SCRIPT}}]
        ),
        history={"status": "failed", "reason": "no round was aggregated; nothing published"},
        metrics=None,
    )
    version = ModelRegistry(settings).register("run-ok")
    _audit_report(home, "audit-1", tamper=False)
    _audit_report(home, "audit-2", tamper=True)
    return version


def form_value(page: str, name: str) -> str:
    """The value of the hidden form field ``name`` on ``page``."""
    found = re.search(rf'<input type="hidden" name="{name}" value="([^"]+)">', page)
    assert found, f"no {name} field"
    return found.group(1)


def login_nonce(client: TestClient) -> str:
    """Open the login form (which sets its nonce cookie); the nonce it carries."""
    return form_value(client.get("/console/login").text, "nonce")


def sign_in(client: TestClient, secret: str) -> None:
    """Sign ``client`` in to the console with the token ``secret``, through the form."""
    form = {"token": secret, "nonce": login_nonce(client)}
    answer = client.post("/console/login", data=form, follow_redirects=False)
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console/"


def set_cookie_line(answer: Any, name: str) -> str | None:
    """The Set-Cookie line of cookie ``name`` in an answer (None: not set)."""
    found = [c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{name}=")]
    return found[0] if found else None


def assert_console_headers(headers: Any) -> None:
    """The console's security headers are all on the answer."""
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
