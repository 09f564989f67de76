"""The main job's later parts: the federation's table, the index over HTTP, the audit.

``fedembed demo`` (:mod:`fedembed.demo`) calls them in that order once the federation
has run; each prints its table and returns what ``results.json`` records.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from embedding_core.encoder import Encoder
from fedembed.demo_plot import plot_rounds
from fedembed.demo_steps import DemoSteps

if TYPE_CHECKING:
    from policies import LoadedPolicy

__all__ = ["audit_part", "index_part", "print_federation", "print_uses"]

_STAGE_PREFIX = re.compile(r"^\[[^\]]*\]\s*")


def audit_part(
    out: Path,
    released: Path,
    model: Path | None,
    data_dir: Path,
    cache_dir: Path,
    *,
    backend: str,
    full: bool,
    policy: LoadedPolicy,
    steps: DemoSteps,
    ckks_seconds: float | None = None,
) -> dict[str, Any]:
    """Audit the release and the index (quick or ``full``); returns the report's summary.

    ``ckks_seconds`` sizes the quick audit's CKKS checks to the machine.

    Each audit stage's seconds join ``steps``; the policy checks are printed.
    """
    from audit import AuditConfig, AuditInputs, run_audit
    from kits.layout import CKKS_SEARCH_KEY, DCPE_KEYRING
    from report import write_report

    keyring = out / "kits" / "gateway" / DCPE_KEYRING
    if not keyring.exists():
        keyring = out / "index" / DCPE_KEYRING
    ckks_key = out / "kits" / "gateway" / CKKS_SEARCH_KEY
    if not ckks_key.exists():
        ckks_key = out / "index" / CKKS_SEARCH_KEY
    inputs = AuditInputs(
        policy=policy,
        model=model,
        encoder_backend=backend,
        adapter=released if (released / "adapter.safetensors").exists() else None,
        dcpe_keyring=keyring if keyring.exists() else None,
        ckks_key=ckks_key if ckks_key.exists() else None,
        index=out / "index" / "service" if (out / "index" / "service").exists() else None,
        data_dir=data_dir,
        cache=cache_dir,
        members=out / "members" if (out / "members").is_dir() else None,
    )
    config = AuditConfig() if full else AuditConfig.quick(ckks_seconds=ckks_seconds)
    stage: dict[str, Any] = {"name": "audit: loading the audited model and data"}
    stage["since"] = time.perf_counter()

    def progress(line: str) -> None:
        # Each stage line ends the stage before it: its seconds join the timings table.
        now = time.perf_counter()
        steps.record(f"audit/{stage['name']}", f"  {stage['name']}", now - stage["since"])
        stage["name"], stage["since"] = _STAGE_PREFIX.sub("", line).strip() or "audit", now
        typer.echo(line, err=True)

    results = run_audit(inputs, config, progress=progress)
    files = write_report(results, out / "audit")
    typer.echo(f"{'policy check':<28}{'value':>10}{'limit':>10}  status")
    for check in results["checks"]:
        value = "-" if check["value"] is None else f"{check['value']:.3f}"
        typer.echo(
            f"{check['id']:<28}{value:>10}{check['comparison']:>3}{check['threshold']:>7.3g}  "
            f"{check['status']}"
        )
    typer.echo(f"report: {files.html} (+ .json, .pdf; JSON SHA-256 {files.json_sha256[:16]}...)")
    return {
        "profile": "full" if full else "quick",
        "html": str(files.html),
        "json_sha256": files.json_sha256,
        "checks": {c["id"]: c["status"] for c in results["checks"]},
        "evidence": results["evidence"],
    }


def index_part(
    out: Path,
    scifact: Any,
    encoder: Encoder,
    vectors: Any,
    released: Path,
    model: Path | None,
    ckks_claims: int | None,
    *,
    ckks_seconds: float | None = None,
) -> dict[str, Any]:
    """Serve the release over HTTP (at rest, DCPE, CKKS); prints and returns the rows."""
    from embedding_core.adapter import Adapter
    from embedding_core.evaluation import score_retrieval
    from fedembed.index_demo import run_index_demo

    adapter = released if (released / "adapter.safetensors").exists() else None
    members = {p.name: p for p in sorted((out / "members").iterdir()) if p.is_dir()}
    part = run_index_demo(
        out=out, members=members, test=scifact, encoder=encoder, adapter=adapter,
        kits=out / "kits", model=model, ckks_claims=ckks_claims, ckks_seconds=ckks_seconds,
    )  # fmt: skip
    in_process = score_retrieval(
        vectors, scifact, adapter=Adapter.load(adapter) if adapter is not None else None
    )
    typer.echo(f"{'setting':<48}{'nDCG@10':>9}{'p50 ms':>9}")
    typer.echo(
        f"{'exact search in process, same adapter':<48}{100 * in_process['ndcg@10']:>9.2f}{'-':>9}"
    )
    for row in part["rows"]:
        typer.echo(f"{row['setting']:<48}{100 * row['ndcg@10']:>9.2f}{row['p50_ms']:>9.1f}")
        if "at_rest_same_claims_ndcg@10" in row:
            same = 100 * row["at_rest_same_claims_ndcg@10"]
            typer.echo(f"{'  encrypted at rest, the same claims':<48}{same:>9.2f}{'-':>9}")
    typer.echo(
        f"audit log: {part['audit_entries']} entries, chain "
        f"{'verified' if part['audit_ok'] else 'BROKEN'}, head {part['audit_head'][:16]}"
    )
    part["in_process_ndcg@10"] = in_process["ndcg@10"]
    return part


def print_federation(fed: dict[str, Any], out: Path) -> Path:
    """The comparison table, the plot and the release line; returns the release folder."""
    from fedembed.federated_demo import RELEASE_TAG

    typer.echo(f"\n{'setting':<46}{'nDCG@10':>9}{'run eps':>9}  cumulative epsilon per member")
    for row in fed["rows"]:
        eps = row.get("epsilon_per_node")
        eps_s = ", ".join(f"{n}={e:.2f}" for n, e in eps.items()) if eps else "-"
        run_eps = row.get("run_epsilon")
        run_s = "-" if run_eps is None else f"{run_eps:.2f}"
        typer.echo(f"{row['setting']:<46}{100 * row['ndcg@10']:>9.2f}{run_s:>9}  {eps_s}")
    typer.echo(f"(delta=1e-5; {fed['accounting']})")
    plot_rounds(fed["rows"], out / "ndcg_per_round.png")
    typer.echo(f"\nplot: {out / 'ndcg_per_round.png'}")
    released = out / "runs" / RELEASE_TAG / "global_adapter"
    plan = fed["release"]["plan"]
    typer.echo(
        f"release: epsilon {plan['epsilon']:.4f} per node, set by {plan['limited_by']}; "
        f"any membership-inference AUC <= {plan['auc_bound']:.4f} for a {plan['observer']}"
        " (the strictest observer; proven, mu-GDP)"
    )
    typer.echo(f"global adapter + manifest: {released}")
    return released


def print_uses(uses: dict[str, Any]) -> None:
    """The members' uses table: each use local only, federated with DP, centralised."""
    sizes = ", ".join(f"{n}={size}" for n, size in uses["members"].items())
    typer.echo(f"\nmembers' uses on {uses['dataset']} ({uses['split']}; records {sizes})")
    typer.echo(f"{'use':<36}{'setting':<46}{'score':>7}{'run eps':>9}  cumulative eps")
    for row in uses["rows"]:
        score = row["accuracy"] if "accuracy" in row else row["nmi"]
        run_eps = row.get("run_epsilon")
        run_s = "-" if run_eps is None else f"{run_eps:g}"
        spent = row.get("epsilon_per_node")
        spent_s = ", ".join(f"{n}={e:.2f}" for n, e in spent.items()) if spent else "-"
        typer.echo(f"{row['use']:<36}{row['setting']:<46}{100 * score:>7.2f}{run_s:>9}  {spent_s}")
    typer.echo(
        f"(delta={uses['delta']:g} a task; each member's ledger composes both tasks; the topic "
        "map's ARI is in results.json)"
    )
