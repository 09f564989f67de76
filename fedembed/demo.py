"""The main job, ``fedembed demo``.

1. Embed and evaluate STS-B and SciFact with the shared encoder, reproducing the
   published all-MiniLM-L6-v2 numbers.
2. Federate: a 3-member consortium (non-IID split of SciFact's training
   interactions) trains the query adapter with DP-SGD on every node and CKKS secure
   aggregation on Flower's deployment engine on loopback, compared with base,
   local-only, non-DP federated and centralised training; writes a table, a PNG of
   nDCG@10 per round, and the published global adapter with its manifest.
3. Members' uses of the shared model on BANKING77 (:mod:`fedembed.uses_demo`): an
   intent classifier and a topic map, each local only, federated with DP through Flower
   and the CKKS secure sum, and centralised.
4. Serve the release over HTTP (at rest, DCPE and CKKS collections) and audit it.

Every dataset is checked before any work (:mod:`fedembed.demo_data`); every party (the
demo, the nodes, the coordinator's central evaluation, the audit) shares one embedding
cache, so SciFact is encoded once. Each long step prints ``[n/N] what`` when it starts;
``results.json`` records each step's wall seconds (``"timings"``), printed as a table at
the end (:mod:`fedembed.demo_steps`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from embedding_core.cache import CACHE_DIR_ENV, EmbeddingCache, default_cache_dir
from embedding_core.cli import EncoderBackendOpt
from embedding_core.data import load_beir, load_stsb
from embedding_core.data.paths import DATA_DIR_ENV
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, Encoder
from fedembed.demo_data import QUICK_SEAT_TESTS, MissingDataError, ensure_demo_data
from fedembed.demo_parts import audit_part, index_part, print_federation, print_uses
from fedembed.demo_steps import DemoSteps, load_average

if TYPE_CHECKING:
    from embedding_core.data import BeirDataset
    from embedding_core.evaluation import RetrievalVectors
    from policies import LoadedPolicy

__all__ = ["PUBLISHED", "demo"]

logger = logging.getLogger(__name__)

# MTEB's published all-MiniLM-L6-v2 scores (fractions).
PUBLISHED = {"stsb_spearman": 0.8203, "scifact_ndcg@10": 0.6451}
TOLERANCE = 0.005
# the ONNX backends' bound (issue 28): at most 0.3 points below the published number
MAX_LOSS = 0.003
# Each CKKS check's time: the partner's CKKS claims, the quick audit's CKKS utility and
# probes (half each). On the AVX2-only host a CKKS query over SciFact takes 0.86 s.
CKKS_SECONDS = 30.0
FULL_AUDIT_TIME = "about 30 minutes more on 2 cores (1,931 s measured in `make demo`, 2026-11-29)"


def _data_folder(data_dir: Path | None) -> Path:
    """``--data-dir``, else ``$FEDEMBED_DATA_DIR``; one clear line when neither is set."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV, "").strip()
    if not chosen:
        raise MissingDataError(
            "no data folder was given",
            fix=f"pass --data-dir or set {DATA_DIR_ENV} to the folder that holds stsb/, "
            "scifact/, banking77/ and seat/ (see ../shared/data/README.md)",
        )
    return Path(chosen).expanduser().absolute()


def demo(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Datasets folder (default $FEDEMBED_DATA_DIR): stsb/, scifact/, banking77/, "
            "seat/. Missing ones are downloaded when the network allows.",
        ),
    ] = None,
    download: Annotated[
        bool,
        typer.Option(help="Download missing datasets when the network allows (else stop at once)."),
    ] = True,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("out/demo"),
    model: Annotated[Path | None, typer.Option("--model", help="Local model folder.")] = None,
    encoder_backend: EncoderBackendOpt = DEFAULT_ENCODER_BACKEND,
    cache_dir: Annotated[
        Path | None,
        typer.Option(
            "--cache-dir",
            help=f"Embedding cache folder shared by every party (default ${CACHE_DIR_ENV} "
            "or ~/.cache/fedembed/embeddings).",
        ),
    ] = None,
    federation: Annotated[
        bool, typer.Option(help="Run the federated part (the table, the release).")
    ] = True,
    rounds: Annotated[
        int, typer.Option(help="Rounds of each deployment-engine federation.", min=1)
    ] = 5,
    distributed_rounds: Annotated[
        int,
        typer.Option(
            help="Rounds of each distributed-DP federation, the release's included "
            "(simulation engine; its DP noise is calibrated to them).",
            min=1,
        ),
    ] = 100,
    full_sweep: Annotated[
        bool,
        typer.Option(
            "--full-sweep",
            help="Every DP row kind at epsilon 1, 2, 4 and 8 (default: epsilon 8 only, plus "
            "the release at the policy's epsilon). Adds 6 federations: about 15 minutes on "
            "2 cores.",
        ),
    ] = False,
    uses: Annotated[
        bool,
        typer.Option(
            help="Members' uses on BANKING77 (an intent classifier and a topic map: local "
            "only, federated with DP, centralised; about 50 s; needs the federation)."
        ),
    ] = True,
    index: Annotated[
        bool,
        typer.Option(help="Serve the index: node uploads, partner queries (needs the federation)."),
    ] = True,
    ckks_claims: Annotated[
        int,
        typer.Option(
            "--ckks-claims",
            min=0,
            help="Test claims the partner sends to the CKKS collection (a seeded sample; 0: "
            "all 300, about 2 more minutes). The other collections get all 300.",
        ),
    ] = 100,
    ckks_seconds: Annotated[
        float,
        typer.Option(
            "--ckks-seconds",
            min=0,
            help="Seconds each CKKS check may spend on its sample, so a slower machine "
            "takes a smaller one: the partner's CKKS claims (at least 20, at most "
            "--ckks-claims) and, in the quick audit, the CKKS utility and probes (half each). "
            "0: fixed samples.",
        ),
    ] = CKKS_SECONDS,
    audit: Annotated[
        bool,
        typer.Option(help="Run the privacy and bias audit and write the compliance report."),
    ] = True,
    full_audit: Annotated[
        bool,
        typer.Option(
            "--full-audit",
            help="The full-size audit (default: every check on samples sized to a few "
            f"minutes); {FULL_AUDIT_TIME}.",
        ),
    ] = False,
    audit_quick: Annotated[
        bool,
        typer.Option(
            "--audit-quick",
            hidden=True,
            help="Accepted for old scripts: the quick audit is now the default.",
        ),
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
    """Run the main job: reproduction, federation and release, members' uses, index, audit.

    The default fits about 15 minutes on 2 CPU cores from empty caches. --full-sweep adds the
    epsilon 1, 2 and 4 columns, --ckks-claims 0 all claims on the CKKS collection,
    --full-audit the full-size audit.
    """
    from policies import PolicyError, load_default_policy, load_policy

    if audit_quick and full_audit:
        raise typer.BadParameter(
            "--audit-quick and --full-audit contradict each other; the quick audit is the "
            "default, so drop --audit-quick",
            param_hint="--audit-quick",
        )
    if audit_quick:
        typer.echo("note: --audit-quick is the default now; --full-audit runs the full audit")
    try:
        policy = load_policy(policy_file) if policy_file else load_default_policy()
    except PolicyError as exc:
        raise typer.BadParameter(str(exc), param_hint="--policy") from None
    data = _data_folder(data_dir)
    seat: tuple[str, ...] | None = ()
    if federation and audit:
        seat = None if full_audit else QUICK_SEAT_TESTS
    downloaded = ensure_demo_data(data, seat_tests=seat, download=download)
    if downloaded:
        typer.echo(f"downloaded into {data}: {', '.join(downloaded)}")
    out = out.resolve()
    # One cache for every party: this process, the Flower nodes and ServerApps it starts
    # (in process and as subprocesses), the gateway and the audit.
    cache_folder = (cache_dir or default_cache_dir()).expanduser().resolve()
    os.environ[CACHE_DIR_ENV] = str(cache_folder)
    _run(
        data=data, out=out, model=model, backend=encoder_backend, cache_folder=cache_folder,
        policy=policy,
        federation=federation, uses=uses, index=index, audit=audit, rounds=rounds,
        ckks_claims=ckks_claims, ckks_seconds=ckks_seconds or None,
        distributed_rounds=distributed_rounds,
        full_sweep=full_sweep, full_audit=full_audit,
    )  # fmt: skip


def _run(
    *,
    data: Path,
    out: Path,
    model: Path | None,
    backend: str,
    cache_folder: Path,
    policy: LoadedPolicy,
    federation: bool,
    uses: bool,
    index: bool,
    audit: bool,
    rounds: int,
    distributed_rounds: int,
    ckks_claims: int,
    ckks_seconds: float | None,
    full_sweep: bool,
    full_audit: bool,
) -> None:
    load_start = load_average()
    steps = DemoSteps(echo=typer.echo)
    steps.plan("encoder", f"encoder: load ({backend}; an ONNX backend exports once per cache)")
    steps.plan("stsb", "reproduction: STS-B test (encode 1,379 sentence pairs)")
    steps.plan("scifact", "reproduction: SciFact test (encode the corpus, score the claims)")
    recipe = epsilons = None
    if federation:
        from fedembed.federated_demo import EPSILONS, QUICK_EPSILONS, Recipe, plan_federation

        recipe = Recipe(
            rounds=rounds, distributed_rounds=distributed_rounds, encoder_backend=backend
        )
        epsilons = EPSILONS if full_sweep else QUICK_EPSILONS
        plan_federation(steps, recipe, epsilons)
        if uses:
            from fedembed.uses_demo import UsesRecipe, plan_uses

            plan_uses(steps, UsesRecipe())
        if index:
            steps.plan("index", "index over HTTP: uploads, partner claims (at rest, DCPE, CKKS)")
        if audit:
            profile = "full" if full_audit else "quick"
            steps.plan("audit", f"audit ({profile}): attacks, membership, bias, report")
    encoder = Encoder.load(model, backend=backend)
    cache = EmbeddingCache(cache_folder)
    result: dict[str, Any] = {
        "model": encoder.model_id,
        "model_fingerprint": encoder.fingerprint,
        "encoder_backend": encoder.backend,
        "cache_dir": str(cache_folder),
        "published": PUBLISHED,
    }
    out.mkdir(parents=True, exist_ok=True)
    try:
        with steps.run("encoder"):
            encoder.encode(["fedembed"], show_progress=False)  # the lazy load happens here
        scifact, vectors = _reproduce(data, encoder, cache, steps, result)
        if federation and recipe is not None and epsilons is not None:
            from fedembed.federated_demo import run_federated_demo

            fed = run_federated_demo(
                data_dir=data, out=out, encoder=encoder, cache=cache, test_vectors=vectors,
                test=scifact, recipe=recipe, epsilons=epsilons, policy=policy.policy, steps=steps,
            )  # fmt: skip
            result["federation"] = fed["rows"]
            released = print_federation(fed, out)
            if uses:
                from fedembed.uses_demo import UsesRecipe, run_uses_demo

                result["uses"] = run_uses_demo(
                    data_dir=data, out=out, encoder=encoder, cache=cache, kits=out / "kits",
                    steps=steps, recipe=UsesRecipe(),
                )  # fmt: skip
                print_uses(result["uses"])
            if index:
                with steps.run("index"):
                    result["index"] = index_part(
                        out,
                        scifact,
                        encoder,
                        vectors,
                        released,
                        model,
                        ckks_claims or None,
                        ckks_seconds=ckks_seconds,
                    )
            if audit:
                with steps.run("audit"):
                    result["audit"] = audit_part(
                        out, released, model, data, cache_folder, backend=backend,
                        full=full_audit, policy=policy, steps=steps, ckks_seconds=ckks_seconds,
                    )  # fmt: skip
    except BaseException:  # a failed or stopped job still leaves its timings so far
        _write(out, result, steps, load_start)
        raise
    _write(out, result, steps, load_start)
    typer.echo(json.dumps({"stsb_spearman": result["stsb"]["spearman"], **result["scifact"]}))


def _reproduce(
    data: Path, encoder: Encoder, cache: EmbeddingCache, steps: DemoSteps, result: dict[str, Any]
) -> tuple[BeirDataset, RetrievalVectors]:
    """STS-B and SciFact against MTEB's published numbers; returns SciFact and its vectors."""
    from embedding_core.evaluation import embed_retrieval, evaluate_sts, score_retrieval

    with steps.run("stsb"):
        sts = evaluate_sts(encoder, load_stsb(data / "stsb"), cache=cache)
    with steps.run("scifact"):
        scifact = load_beir(data / "scifact")
        vectors = embed_retrieval(encoder, scifact, cache=cache, show_progress=True)
        beir = score_retrieval(vectors, scifact)
    result["stsb"], result["scifact"] = sts, beir
    rows = [
        ("STS-B test Spearman (cosine)", sts["spearman"], PUBLISHED["stsb_spearman"]),
        ("SciFact test nDCG@10", beir["ndcg@10"], PUBLISHED["scifact_ndcg@10"]),
        ("SciFact test recall@100", beir["recall@100"], None),
        ("SciFact test MRR@10", beir["mrr@10"], None),
    ]
    exact = encoder.backend == "torch"
    note = "" if exact else "; --encoder-backend torch gives MTEB's exactly"
    typer.echo(f"\nfedembed demo: {encoder.model_id} (encoder backend {encoder.backend}{note})")
    # torch reproduces the published numbers; a quantised backend may lose at most 0.3
    judge = "within 0.5" if exact else "<= 0.3 lost"
    typer.echo(f"{'metric':<32}{'ours':>8}{'published':>11}{judge:>12}")
    for name, ours, ref in rows:
        ref_s = f"{100 * ref:.2f}" if ref is not None else "-"
        held = ref is not None and (
            abs(ours - ref) <= TOLERANCE if exact else ours >= ref - MAX_LOSS
        )
        ok = "-" if ref is None else ("yes" if held else "NO")
        typer.echo(f"{name:<32}{100 * ours:>8.2f}{ref_s:>11}{ok:>12}")
    return scifact, vectors


def _write(out: Path, result: dict[str, Any], steps: DemoSteps, load_start: Any) -> None:
    """Write ``results.json`` (with ``timings``) and print the timings table."""
    result["seconds"] = steps.total_s
    result["timings"] = steps.timings()
    result["load_average"] = {"start": load_start, "end": load_average()}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    typer.echo("")
    for line in steps.table():
        typer.echo(line)
    typer.echo(f"results written to {out / 'results.json'}")
