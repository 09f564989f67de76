"""The main job, ``fedembed demo``.

1. Embed and evaluate STS-B and SciFact with the shared encoder, reproducing the
   published all-MiniLM-L6-v2 numbers.
2. Federate: a 3-member consortium (non-IID split of SciFact's training
   interactions) trains the query adapter with DP-SGD on every node and CKKS secure
   aggregation on Flower's deployment engine on loopback, compared with base,
   local-only, non-DP federated and centralised training; writes a table, a PNG of
   nDCG@10 per round, and the published global adapter with its manifest.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from embedding_core.cache import EmbeddingCache
from embedding_core.data import load_beir, load_stsb, resolve_data_dir, resolve_dataset_dir
from embedding_core.encoder import Encoder

if TYPE_CHECKING:
    from policies import LoadedPolicy

__all__ = ["PUBLISHED", "demo"]

logger = logging.getLogger(__name__)

# MTEB's published all-MiniLM-L6-v2 scores (fractions).
PUBLISHED = {"stsb_spearman": 0.8203, "scifact_ndcg@10": 0.6451}
TOLERANCE = 0.005


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        per_round = row.get("per_round")
        if per_round:
            rounds = sorted(per_round, key=int)
            ax.plot(
                [int(r) for r in rounds],
                [100 * per_round[r] for r in rounds],
                marker="o",
                label=row["setting"],
            )
    for row in rows:
        if row["setting"].startswith(("base", "centralised")):
            ax.axhline(100 * row["ndcg@10"], linestyle="--", linewidth=1, color="grey")
            ax.annotate(row["setting"], (0, 100 * row["ndcg@10"]), fontsize=8)
    ax.set_xlabel("round")
    ax.set_ylabel("SciFact test nDCG@10")
    ax.set_title("Federated query adapter (3 nodes, CKKS, DP-SGD per node)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _audit_part(
    out: Path,
    released: Path,
    model: Path | None,
    data_dir: Path,
    cache_dir: Path | None,
    *,
    quick: bool,
    policy: LoadedPolicy,
) -> dict[str, Any]:
    from audit import AuditConfig, AuditInputs, run_audit
    from kits.layout import CKKS_SEARCH_KEY, DCPE_KEYRING
    from report import write_report

    keyring = out / "kits" / "gateway" / DCPE_KEYRING
    if not keyring.exists():
        keyring = out / "index" / DCPE_KEYRING
    ckks_key = out / "kits" / "gateway" / CKKS_SEARCH_KEY
    if not ckks_key.exists():
        ckks_key = out / "index" / CKKS_SEARCH_KEY
    typer.echo("\naudit: attacking the released model and the index protection")
    inputs = AuditInputs(
        policy=policy,
        model=model,
        adapter=released if (released / "adapter.safetensors").exists() else None,
        dcpe_keyring=keyring if keyring.exists() else None,
        ckks_key=ckks_key if ckks_key.exists() else None,
        index=out / "index" / "service" if (out / "index" / "service").exists() else None,
        data_dir=data_dir,
        cache=cache_dir,
        members=out / "members" if (out / "members").is_dir() else None,
    )
    config = AuditConfig.quick() if quick else AuditConfig()
    results = run_audit(inputs, config, progress=lambda line: typer.echo(line, err=True))
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
        "html": str(files.html),
        "json_sha256": files.json_sha256,
        "checks": {c["id"]: c["status"] for c in results["checks"]},
        "evidence": results["evidence"],
    }


def _index_part(
    out: Path,
    scifact: Any,
    encoder: Encoder,
    vectors: Any,
    released: Path,
    model: Path | None,
) -> dict[str, Any]:
    from embedding_core.adapter import Adapter
    from embedding_core.evaluation import score_retrieval
    from fedembed.index_demo import run_index_demo

    adapter = released if (released / "adapter.safetensors").exists() else None
    members = {p.name: p for p in sorted((out / "members").iterdir()) if p.is_dir()}
    typer.echo("\nindex: members upload their documents, a partner sends every test claim")
    part = run_index_demo(
        out=out, members=members, test=scifact, encoder=encoder, adapter=adapter,
        kits=out / "kits", model=model,
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
    typer.echo(
        f"audit log: {part['audit_entries']} entries, chain "
        f"{'verified' if part['audit_ok'] else 'BROKEN'}, head {part['audit_head'][:16]}"
    )
    part["in_process_ndcg@10"] = in_process["ndcg@10"]
    return part


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Datasets folder (default $FEDEMBED_DATA_DIR)."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/demo"),
    model: Annotated[Path | None, typer.Option("--model", help="Local model folder.")] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Embedding cache folder.")
    ] = None,
    federation: Annotated[
        bool, typer.Option(help="Run the federated part (minutes on 2 CPU cores).")
    ] = True,
    rounds: Annotated[int, typer.Option(help="Federated rounds.", min=1)] = 5,
    index: Annotated[
        bool,
        typer.Option(help="Serve the index: node uploads, partner queries (needs the federation)."),
    ] = True,
    audit: Annotated[
        bool,
        typer.Option(help="Run the privacy and bias audit and write the compliance report."),
    ] = True,
    audit_quick: Annotated[
        bool, typer.Option(help="Small audit samples (about 2 minutes instead of about 10).")
    ] = False,
    policy_file: Annotated[
        Path | None,
        typer.Option(
            "--policy",
            help="Consortium policy: plans the release's epsilon, judges the audit "
            "(default: the shipped consortium default).",
        ),
    ] = None,
) -> None:
    """Run the main job: evaluation, then the federation and its comparison table."""
    # torch and scipy load here, not when any other command (or --help) starts
    from embedding_core.evaluation import embed_retrieval, evaluate_sts, score_retrieval
    from policies import PolicyError, load_default_policy, load_policy

    started = time.perf_counter()
    out = out.resolve()
    try:
        policy = load_policy(policy_file) if policy_file else load_default_policy()
    except PolicyError as exc:
        raise typer.BadParameter(str(exc), param_hint="--policy") from None
    encoder = Encoder.load(model)
    cache = EmbeddingCache(cache_dir)
    pairs = load_stsb(resolve_dataset_dir(data_dir, "stsb", marker="stsb-test.jsonl"))
    sts = evaluate_sts(encoder, pairs, cache=cache)
    scifact = load_beir(resolve_dataset_dir(data_dir, "scifact", marker="corpus.jsonl"))
    vectors = embed_retrieval(encoder, scifact, cache=cache, show_progress=True)
    beir = score_retrieval(vectors, scifact)
    rows = [
        ("STS-B test Spearman (cosine)", sts["spearman"], PUBLISHED["stsb_spearman"]),
        ("SciFact test nDCG@10", beir["ndcg@10"], PUBLISHED["scifact_ndcg@10"]),
        ("SciFact test recall@100", beir["recall@100"], None),
        ("SciFact test MRR@10", beir["mrr@10"], None),
    ]
    typer.echo(f"\nfedembed demo: {encoder.model_id}")
    typer.echo(f"{'metric':<32}{'ours':>8}{'published':>11}{'within 0.5':>12}")
    for name, ours, ref in rows:
        ref_s = f"{100 * ref:.2f}" if ref is not None else "-"
        ok = "-" if ref is None else ("yes" if abs(ours - ref) <= TOLERANCE else "NO")
        typer.echo(f"{name:<32}{100 * ours:>8.2f}{ref_s:>11}{ok:>12}")
    result: dict[str, Any] = {
        "model": encoder.model_id,
        "model_fingerprint": encoder.fingerprint,
        "stsb": sts,
        "scifact": beir,
        "published": PUBLISHED,
    }
    out.mkdir(parents=True, exist_ok=True)
    if federation:
        from fedembed.federated_demo import RELEASE_TAG, Recipe, run_federated_demo

        fed = run_federated_demo(
            data_dir=resolve_data_dir(data_dir),
            out=out,
            encoder=encoder,
            cache=cache,
            test_vectors=vectors,
            test=scifact,
            recipe=Recipe(rounds=rounds),
            policy=policy.policy,
        )
        result["federation"] = fed["rows"]
        typer.echo(f"\n{'setting':<46}{'nDCG@10':>9}{'run eps':>9}  cumulative epsilon per member")
        for row in fed["rows"]:
            eps = row.get("epsilon_per_node")
            eps_s = ", ".join(f"{n}={e:.2f}" for n, e in eps.items()) if eps else "-"
            run_eps = row.get("run_epsilon")
            run_s = "-" if run_eps is None else f"{run_eps:.2f}"
            typer.echo(f"{row['setting']:<46}{100 * row['ndcg@10']:>9.2f}{run_s:>9}  {eps_s}")
        typer.echo(f"(delta=1e-5; {fed['accounting']})")
        _plot(fed["rows"], out / "ndcg_per_round.png")
        typer.echo(f"\nplot: {out / 'ndcg_per_round.png'}")
        released = out / "runs" / RELEASE_TAG / "global_adapter"
        plan = fed["release"]["plan"]
        typer.echo(
            f"release: epsilon {plan['epsilon']:.4f} per node, set by {plan['limited_by']}; "
            f"any membership-inference AUC <= {plan['auc_bound']:.4f} for a {plan['observer']}"
            " (the strictest observer; proven, mu-GDP)"
        )
        typer.echo(f"global adapter + manifest: {released}")
        if index:
            result["index"] = _index_part(out, scifact, encoder, vectors, released, model)
        if audit:
            result["audit"] = _audit_part(
                out,
                released,
                model,
                resolve_data_dir(data_dir),
                cache_dir,
                quick=audit_quick,
                policy=policy,
            )
    result["seconds"] = round(time.perf_counter() - started, 1)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo(f"results written to {out / 'results.json'}")
    typer.echo(json.dumps({"stsb_spearman": sts["spearman"], **beir}))
