"""``fedembed audit``: attack the model and its protections, judge by policy, write the report."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated

import click
import typer

from audit.bias_cli import bias
from embedding_core.cli import EncoderBackendOpt
from embedding_core.data.paths import resolve_data_dir
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND

__all__ = ["audit", "audit_app"]

logger = logging.getLogger(__name__)

VERDICT_EXIT = {"pass": 0, "fail": 1}

audit_app = typer.Typer(
    name="audit",
    no_args_is_help=False,
    pretty_exceptions_enable=False,
)
# The part commands import their attacks when they run, so loading this group stays light.
audit_app.command("bias")(bias)


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Report folder (created); required for the full audit."),
    ] = None,
    model: Annotated[
        Path | None, typer.Option("--model", help="Local encoder folder (default: bundled).")
    ] = None,
    encoder_backend: EncoderBackendOpt = DEFAULT_ENCODER_BACKEND,
    adapter: Annotated[
        Path | None,
        typer.Option("--adapter", help="Released adapter folder (global_adapter of a run)."),
    ] = None,
    index: Annotated[
        Path | None, typer.Option("--index", help="Index data folder (named in the report).")
    ] = None,
    dcpe_key_file: Annotated[
        Path | None,
        typer.Option("--dcpe-key-file", help="The consortium DCPE keyring the index uses."),
    ] = None,
    ckks_key_file: Annotated[
        Path | None,
        typer.Option(
            "--ckks-key-file",
            help="The gateway's CKKS search key when the index serves CKKS collections.",
        ),
    ] = None,
    members: Annotated[
        Path | None,
        typer.Option("--members", help="Member folders (<node>/documents.jsonl): owner probe."),
    ] = None,
    wordnet: Annotated[
        Path | None,
        typer.Option(
            "--wordnet",
            help="WordNet database folder (Debian wordnet-base: /usr/share/wordnet): the "
            "inversion attacker's word map also learns from its 160,000 public glosses.",
        ),
    ] = None,
    attribute_data: Annotated[
        Path | None,
        typer.Option(
            "--attribute-data",
            help="Your labelled records (CSV, TSV, JSON lines, Parquet): the attribute attack "
            "infers --attribute-label; a seeded half is the attacker's, the rest the targets "
            "(default: BANKING77 intent).",
        ),
    ] = None,
    attribute_label: Annotated[
        str | None,
        typer.Option("--attribute-label", help="The column of --attribute-data to infer."),
    ] = None,
    attribute_text: Annotated[
        str, typer.Option("--attribute-text", help="The text column of --attribute-data.")
    ] = "text",
    target_records: Annotated[
        Path | None,
        typer.Option(
            "--target-records",
            help="Your records (CSV, TSV, JSON lines, Parquet) the inversion attacks try to "
            "recover (default: BANKING77 test queries and SciFact claims).",
        ),
    ] = None,
    target_text: Annotated[
        str, typer.Option("--target-text", help="The text column of --target-records.")
    ] = "text",
    membership_records: Annotated[
        Path | None,
        typer.Option(
            "--membership-records",
            help='Your interactions ({"query_id", "query", "doc_id"} JSON lines, the node '
            "format): the membership game's pool (default: SciFact train pairs).",
        ),
    ] = None,
    membership_documents: Annotated[
        Path | None,
        typer.Option(
            "--membership-documents",
            help='The documents --membership-records point at ({"id", "text"} JSON lines).',
        ),
    ] = None,
    bias_tests: Annotated[
        list[Path] | None,
        typer.Option(
            "--bias-tests",
            help="Folder of your SEAT tests (<name>.jsonl: targ1, targ2, attr1, attr2); "
            "repeatable. They join the sent-bias suite in one Holm family (--quick: its "
            "weat1, weat2, weat7). Bias alone, in seconds: 'fedembed audit bias --tests DIR'.",
        ),
    ] = None,
    policy: Annotated[
        Path | None, typer.Option("--policy", help="Policy TOML (default: consortium default).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Datasets folder (default $FEDEMBED_DATA_DIR)."),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option("--cache-dir", help="Embedding cache folder.")
    ] = None,
    quick: Annotated[
        bool, typer.Option("--quick", help="Small samples and budgets (about a minute).")
    ] = False,
    strict: Annotated[
        bool, typer.Option("--strict", help="Exit 1 when any policy check fails.")
    ] = False,
) -> None:
    """Run the privacy and bias audit and write report.html, report.json and report.pdf.

    Without a subcommand, the full audit runs: every attack against every protection,
    judged by the policy. A subcommand runs one part of it on the auditor's own material.

    Aim each attack at your own material:

    attribute   --attribute-data FILE --attribute-label COL [--attribute-text COL]
                (static and adaptive attackers; default: BANKING77 intent)
    inversion   --target-records FILE [--target-text COL]
                (default: BANKING77 test queries, SciFact test claims)
    membership  --membership-records FILE --membership-documents FILE
                (default: SciFact train pairs)
    bias        --bias-tests DIR (repeatable; your SEAT-format tests beside the suite),
                or alone, in seconds: fedembed audit bias --tests DIR [--json]
    """
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise click.UsageError(
            "the full audit needs --out DIR (the report folder), e.g. "
            "'fedembed audit --out out/audit'; or run one part: 'fedembed audit bias --help'",
            ctx=ctx,
        )
    # Imported here: the attacks load torch and scikit-learn, which every other
    # ``fedembed`` command would otherwise wait for at start-up.
    from attacks.seat_tests import load_bias_folder
    from attacks.wordnet_glosses import check_wordnet_dir
    from audit.auditor_records import read_auditor_inputs
    from audit.config import AuditConfig, AuditInputs
    from audit.full_audit import run_audit
    from audit.index_evidence import gather_index_evidence
    from crypto.ckks_search_key import load_ckks_key
    from crypto.dcpe_keys import DcpeKeyring
    from embedding_core.adapter import Adapter
    from policies import load_default_policy, load_policy
    from report import write_report

    loaded = load_policy(policy) if policy is not None else load_default_policy()
    if adapter is not None:
        Adapter.load(adapter)  # a missing or corrupt adapter fails before any attack runs
    if dcpe_key_file is not None:
        DcpeKeyring.load(dcpe_key_file)
    if ckks_key_file is not None:
        load_ckks_key(ckks_key_file)
    if index is not None:
        gather_index_evidence(index)
    if wordnet is not None:
        check_wordnet_dir(wordnet)  # a folder without WordNet's files fails before any attack
    for folder in bias_tests or []:
        load_bias_folder(folder, option="--bias-tests")  # bad tests fail before any attack
    inputs = AuditInputs(
        policy=loaded,
        model=model,
        encoder_backend=encoder_backend,
        adapter=adapter,
        dcpe_keyring=dcpe_key_file,
        ckks_key=ckks_key_file,
        index=index,
        data_dir=resolve_data_dir(data_dir),
        cache=cache_dir,
        members=members,
        wordnet=wordnet,
        bias_tests=tuple(bias_tests or ()),
        attribute_data=attribute_data,
        attribute_label=attribute_label,
        attribute_text=attribute_text,
        target_records=target_records,
        target_text=target_text,
        membership_records=membership_records,
        membership_documents=membership_documents,
    )
    read_auditor_inputs(inputs)  # the auditor's files and columns, before any attack
    config = AuditConfig.quick() if quick else AuditConfig()
    results = run_audit(inputs, config, progress=lambda line: typer.echo(line, err=True))
    files = write_report(results, out)
    failed = [c["id"] for c in results["checks"] if c["status"] == "fail"]
    missing = [c["id"] for c in results["checks"] if c["status"] == "not_evaluated"]
    typer.echo(
        json.dumps(
            {
                "html": str(files.html),
                "json": str(files.json),
                "pdf": str(files.pdf),
                "json_sha256": files.json_sha256,
                "failed_checks": failed,
                "not_evaluated": missing,
            },
            indent=2,
        )
    )
    if strict and failed:
        raise typer.Exit(code=VERDICT_EXIT["fail"])
