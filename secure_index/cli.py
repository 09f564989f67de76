"""``fedembed index`` (serve, keys, audit verification, collections) and ``fedembed partner``.

Secrets never go on the command line (other users can read it): the admin and store
tokens come from ``FEDEMBED_INDEX_ADMIN_TOKEN`` / ``FEDEMBED_INDEX_STORE_TOKEN``, the KEK
from a key file or ``FEDEMBED_INDEX_KEK``. API keys are printed once, when created.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from crypto.errors import KeyManagementError
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, check_backend
from embedding_core.errors import FedembedError
from index_client.names import COLLECTION, NODE, PARTNER, option_check
from kits.service_certificates import issue_service_certificate
from secure_index.index.hnsw_collection import CollectionSpec, Metric, Protection
from secure_index.index.index_store import IndexStore
from secure_index.index.key_rotation import (
    REWRAP_COMMAND,
    kek_usage,
    rewrap_store,
    rotate_store,
    usage_summary,
)
from secure_index.sealing import KekProvider, KeyFileKeks, load_keks
from secure_index.service.audit_log import AuditLog, verify_audit_log
from secure_index.service.credentials import (
    DEFAULT_BUDGET_WINDOW_S,
    DEFAULT_QUERY_BUDGET,
    DEFAULT_TOP_K_CAP,
    CredentialRole,
    CredentialStore,
)
from secure_index.service.score_release import ScoreRelease
from secure_index.service.settings import (
    STORE_DIR,
    ServiceSettings,
    audit_path,
    credentials_path,
)
from secure_index.storage.state_anchor import resolve_anchor_path

__all__ = ["index_app", "partner_app"]

index_app = typer.Typer(help="Encrypted vector index: serve, keys, collections, audit log.")
keys_app = typer.Typer(help="Key-encryption keys (KEK): create, rotate, retire, list.")
collection_app = typer.Typer(help="Collections (offline, with the service stopped).")
node_key_app = typer.Typer(help="Per-node upload keys.")
partner_app = typer.Typer(help="Partner API keys: create, revoke, resume, list.")
index_app.add_typer(keys_app, name="keys")
index_app.add_typer(collection_app, name="collection")
index_app.add_typer(node_key_app, name="node-key")

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="FEDEMBED_INDEX_DATA_DIR", help="Service data dir.")
]
KeyFile = Annotated[
    Path | None,
    typer.Option("--key-file", envvar="FEDEMBED_INDEX_KEK_FILE", help="KEK key file."),
]
Tenant = Annotated[str, typer.Option(envvar="FEDEMBED_INDEX_TENANT", help="Tenant id.")]
StateAnchorPath = Annotated[
    Path | None,
    typer.Option(
        "--state-anchor",
        envvar="FEDEMBED_INDEX_STATE_ANCHOR",
        help="The store's state anchor, kept outside the data dir (default: beside the "
        "key file; none with FEDEMBED_INDEX_KEK unless set).",
    ),
]


def _encoder_backend(value: str | None) -> str | None:
    """``--encoder-backend`` (or FEDEMBED_INDEX_ENCODER_BACKEND): a known backend."""
    if value is None:
        return None
    try:
        return check_backend(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


EncoderBackend = Annotated[
    str | None,
    typer.Option(
        "--encoder-backend",
        envvar="FEDEMBED_INDEX_ENCODER_BACKEND",
        callback=_encoder_backend,
        help="How the gateway embeds text queries: torch (PyTorch fp32), onnx (ONNX Runtime "
        "fp32) or onnx-int8 (ONNX Runtime, int8-quantised; default "
        f"{DEFAULT_ENCODER_BACKEND}). A collection whose vectors another backend made "
        "refuses the gateway's text queries (409): use the nodes' backend.",
    ),
]
# Names reach folders and URLs: the one rule of index_client.names, refused as a usage error
CollectionName = Annotated[
    str,
    typer.Argument(help="Collection name.", callback=option_check(COLLECTION, typer.BadParameter)),
]
PartnerName = Annotated[
    str, typer.Argument(help="Partner name.", callback=option_check(PARTNER, typer.BadParameter))
]
NodeName = Annotated[
    str,
    typer.Argument(
        help="Node id (owner of its uploads).", callback=option_check(NODE, typer.BadParameter)
    ),
]
Scopes = Annotated[
    list[str],
    typer.Option(
        "--scope",
        help="Collection, or '*' for all (repeat).",
        callback=option_check(COLLECTION, typer.BadParameter, wildcard="*"),
    ),
]


def _echo(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))


@index_app.command("serve")
def serve_cmd(
    data_dir: DataDir,
    role: Annotated[str, typer.Option(help="all | gateway | store")] = "all",
    tenant: Tenant = "consortium",
    key_file: KeyFile = None,
    host: Annotated[str, typer.Option(help="Listen address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port.")] = 8100,
    store_url: Annotated[str | None, typer.Option(help="Store URL (gateway role).")] = None,
    model: Annotated[str | None, typer.Option(help="Encoder folder (default: bundled).")] = None,
    adapter: Annotated[Path | None, typer.Option(help="Query-side adapter folder.")] = None,
    dcpe_key_file: Annotated[Path | None, typer.Option(help="DCPE keyring.")] = None,
    ckks_key_file: Annotated[
        Path | None, typer.Option(help="The gateway's CKKS search key (CKKS collections).")
    ] = None,
    text_queries: Annotated[bool, typer.Option(help="Embed text queries.")] = True,
    encoder_backend: EncoderBackend = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(envvar="FEDEMBED_INDEX_TLS_CERT", help="Serve HTTPS with this certificate."),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(envvar="FEDEMBED_INDEX_TLS_KEY", help="Its private key (mode 0600)."),
    ] = None,
    store_ca: Annotated[
        Path | None,
        typer.Option(
            envvar="FEDEMBED_INDEX_STORE_CA", help="CA certificate of the https:// store (gateway)."
        ),
    ] = None,
    state_anchor: StateAnchorPath = None,
) -> None:
    """Run the gateway and/or the store until Ctrl-C (tokens from the environment)."""
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "role": role,
        "tenant": tenant,
        "host": host,
        "port": port,
        "text_queries": text_queries,
    }
    for name, value in (
        ("kek_file", key_file),
        ("store_url", store_url),
        ("model_path", model),
        ("encoder_backend", encoder_backend),
        ("adapter_path", adapter),
        ("dcpe_key_file", dcpe_key_file),
        ("ckks_key_file", ckks_key_file),
        ("tls_cert", tls_cert),
        ("tls_key", tls_key),
        ("store_ca", store_ca),
        ("state_anchor", state_anchor),
    ):
        if value is not None:
            overrides[name] = value
    try:
        settings = ServiceSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise FedembedError(
            f"the index service settings are invalid: {problems}",
            expected="FEDEMBED_INDEX_ADMIN_TOKEN set to a random token of at least 32 "
            "characters (and FEDEMBED_INDEX_STORE_TOKEN for split roles); "
            "an https:// store URL unless the store is on loopback",
            fix="export the missing variables or correct the options (see docs/index.md) and retry",
        ) from None
    from secure_index.service.server import serve  # the gateway loads torch: only here

    serve(settings)


@index_app.command("tls-cert")
def tls_cert_cmd(
    ca_dir: Annotated[
        Path, typer.Option("--ca-dir", help="The provisioning's admin folder (ca.key, ca.crt).")
    ],
    out: Annotated[Path, typer.Option("--out", help="New folder for server.crt/.key, ca.crt.")],
    host: Annotated[
        list[str],
        typer.Option("--host", help="A host name or IP clients dial (repeat for each)."),
    ],
    days: Annotated[int, typer.Option(help="Validity in days.")] = 365,
) -> None:
    """Issue a TLS certificate for the store or the gateway, signed by the consortium CA."""
    issued = issue_service_certificate(ca_dir, out, host, days=days)
    _echo(
        {
            "cert": str(issued.cert),
            "key": str(issued.key),
            "ca": str(issued.ca),
            "hosts": list(issued.hosts),
            "fingerprint_sha256": issued.fingerprint_sha256,
        }
    )


@index_app.command("ckks-keygen")
def ckks_keygen(
    out: Annotated[Path, typer.Option("--out", help="The gateway's key file (mode 0600).")],
    public_out: Annotated[
        Path | None, typer.Option(help="Also write the public context (for nodes) here.")
    ] = None,
    dimension: Annotated[int, typer.Option(help="Vector width of the model.")] = 384,
) -> None:
    """Create the gateway's CKKS search key (store it in the gateway kit only)."""
    from crypto.ckks_search_key import CkksSearchKey, save_ckks_key

    if out.exists():
        raise KeyManagementError(
            f"{out} exists",
            expected="a new path for the CKKS key file",
            fix="move the old key away first: documents encrypted under it need it",
        )
    key = CkksSearchKey.generate(dimension=dimension)
    save_ckks_key(key, out)
    if public_out is not None:
        public_out.write_bytes(key.public_context())
    _echo(
        {
            "key_file": str(out),
            "public_context": str(public_out) if public_out else None,
            "dimension": dimension,
        }
    )


@keys_app.command("create")
def keys_create(
    key_file: Annotated[Path, typer.Option("--key-file", help="New key file.")],
) -> None:
    """Create a KEK key file with one fresh version (mode 0600)."""
    keks = KeyFileKeks.create(key_file)
    _echo({"key_file": str(key_file), "primary": keks.primary_id})


@keys_app.command("list")
def keys_list(key_file: Annotated[Path, typer.Option("--key-file")]) -> None:
    """The KEK versions (ids and dates, never key bytes)."""
    _echo([v.__dict__ for v in KeyFileKeks.load(key_file).versions()])


@keys_app.command("rotate")
def keys_rotate(
    key_file: Annotated[Path, typer.Option("--key-file")],
    data_dir: DataDir,
    tenant: Tenant = "consortium",
    state_anchor: StateAnchorPath = None,
) -> None:
    """Add a KEK version and re-wrap every sealed file under it (service stopped).

    The store's files, its state anchor and the audit log's head anchor are re-wrapped.
    Refuses before changing anything while the service runs. Older versions stay in the
    key file until `keys retire`; after an interruption, `keys rewrap` finishes the job.
    """
    keks = KeyFileKeks.load(key_file)
    store = data_dir / STORE_DIR
    anchor = resolve_anchor_path(state_anchor, key_file=key_file, store_root=store)
    result = rotate_store(
        store, keks=keks, tenant=tenant, state_anchor=anchor, audit_log=audit_path(data_dir)
    )
    _echo(result.__dict__)


@keys_app.command("rewrap")
def keys_rewrap(
    data_dir: DataDir,
    key_file: KeyFile = None,
    tenant: Tenant = "consortium",
    state_anchor: StateAnchorPath = None,
) -> None:
    """Re-wrap every sealed file and both anchors under the primary KEK (finishes a rotate)."""
    keks = load_keks(key_file=key_file)
    store = data_dir / STORE_DIR
    anchor = resolve_anchor_path(state_anchor, key_file=key_file, store_root=store)
    result = rewrap_store(
        store, keks=keks, tenant=tenant, state_anchor=anchor, audit_log=audit_path(data_dir)
    )
    _echo(result.__dict__)


@keys_app.command("retire")
def keys_retire(
    kek_id: Annotated[str, typer.Argument(help="The old KEK version to remove.")],
    key_file: Annotated[Path, typer.Option("--key-file")],
    data_dir: DataDir,
    state_anchor: StateAnchorPath = None,
) -> None:
    """Remove an old KEK version, refusing while any sealed file or anchor still needs it."""
    keks = KeyFileKeks.load(key_file)
    store = data_dir / STORE_DIR
    anchor = resolve_anchor_path(state_anchor, key_file=key_file, store_root=store)
    audit = audit_path(data_dir)
    # refuses a folder that holds no index store
    usage = kek_usage(store, state_anchor=anchor, audit_log=audit)
    still = usage.get(kek_id, []) if kek_id != keks.primary_id else []
    if still:
        found = usage_summary(still, store_root=store, state_anchor=anchor, audit_log=audit)
        raise KeyManagementError(
            f"{found} still use {kek_id}",
            expected="no file wrapped under the KEK version being retired",
            fix=f"stop the service and run `{REWRAP_COMMAND} --key-file {key_file} --data-dir "
            f"{data_dir}{f' --state-anchor {state_anchor}' if state_anchor else ''}` (it "
            f"re-wraps every file under the primary {keks.primary_id}), then "
            f"retire {kek_id} again",
        )
    keks.retire(kek_id)
    _echo({"retired": kek_id, "primary": keks.primary_id})


VERIFY_AUDIT_HELP = (
    "Check the audit log's hash chain and its keyed head anchor; exit 1 on any problem.\n\n"
    "Needs the gateway's KEK (--key-file or FEDEMBED_INDEX_KEK) to check the anchor's MAC. "
    "Fails when a record was edited, removed, inserted or appended behind the service, the "
    "log was emptied or cut short, or the anchor is missing or does not verify.\n\n"
    "Copy the printed head_hash to a place this host cannot write (a ticket, a signed "
    "e-mail, WORM storage) and pass it back with --expected-head next time: only that "
    "detects a rewrite by someone who holds the KEK, or the log and its anchor put back to "
    "older copies."
)


@index_app.command("verify-audit", help=VERIFY_AUDIT_HELP)
def verify_audit(
    data_dir: DataDir,
    key_file: KeyFile = None,
    expected_head: Annotated[
        str | None,
        typer.Option(
            help="A head hash printed by an earlier run and kept off this host: it must "
            "still be in the chain (detects a rewrite by someone with the KEK, or a rollback)."
        ),
    ] = None,
) -> None:
    """Check the audit log's hash chain and its keyed head anchor (VERIFY_AUDIT_HELP)."""
    keks = _audit_keks(key_file)
    result = verify_audit_log(audit_path(data_dir), keks=keks, expected_head=expected_head)
    _echo(result.__dict__)
    if not result.ok:
        raise typer.Exit(code=1)


@collection_app.command("create")
def collection_create(
    name: CollectionName,
    data_dir: DataDir,
    dimension: Annotated[int, typer.Option("--dim", help="Vector dimension.")] = 384,
    metric: Annotated[str, typer.Option(help="cosine | ip | l2")] = "cosine",
    protection: Annotated[str, typer.Option(help="at-rest | dcpe")] = "at-rest",
    key_file: KeyFile = None,
    tenant: Tenant = "consortium",
    state_anchor: StateAnchorPath = None,
) -> None:
    """Create a collection in the data dir (the service must be stopped)."""
    spec = CollectionSpec(name, dimension, metric=Metric(metric), protection=Protection(protection))
    keks = load_keks(key_file=key_file)
    root = data_dir / STORE_DIR
    anchor = resolve_anchor_path(state_anchor, key_file=key_file, store_root=root)
    with IndexStore(root, keks=keks, tenant=tenant, background=False, state_anchor=anchor) as store:
        _echo(store.create_collection(spec).__dict__)


@index_app.command("accept-rollback")
def accept_rollback(
    collection: Annotated[
        list[str], typer.Option("--collection", help="A collection whose loss you accept.")
    ],
    data_dir: DataDir,
    key_file: KeyFile = None,
    tenant: Tenant = "consortium",
    state_anchor: StateAnchorPath = None,
) -> None:
    """Accept a detected loss (service stopped): open what is left and re-anchor it there.

    Use it only when the newest backup of the data folder cannot be restored: the
    acknowledged writes named in the error are given up for good.
    """
    keks = load_keks(key_file=key_file)
    root = data_dir / STORE_DIR
    anchor = resolve_anchor_path(state_anchor, key_file=key_file, store_root=root)
    if anchor is None:
        raise FedembedError(
            "there is no state anchor to re-anchor",
            expected="--key-file (the anchor lives beside it) or --state-anchor",
            fix="pass the key file or the anchor path the service runs with",
        )
    with IndexStore(
        root, keks=keks, tenant=tenant, background=False, state_anchor=anchor,
        accept_rollback=collection,
    ) as store:  # fmt: skip
        ckks = store.ckks_collections()
        still = {**store.broken(), **ckks.broken()}
        report = {
            "accepted": sorted(collection),
            "open": sorted({*store.names(), *ckks.names()}),
            "still_unavailable": {name: error.problem for name, error in still.items()},
        }
    _echo(report)


def _audit_keks(key_file: Path | None) -> KekProvider:
    """The gateway's KEK, which keys the audit log's head anchor (else a clear error)."""
    try:
        return load_keks(key_file=key_file)
    except KeyManagementError as exc:
        raise KeyManagementError(
            f"{exc.problem}: key operations are appended to the audit log, whose head "
            "anchor is keyed by the gateway's KEK",
            expected=exc.expected,
            fix=exc.fix,
        ) from None


def _audit(
    data_dir: Path, action: str, detail: dict[str, str], *, keks: KekProvider | None = None
) -> None:
    """Key operations from the CLI join the service's hash chain (file-locked appends).

    The chain's head anchor is keyed: ``keks`` (default: ``FEDEMBED_INDEX_KEK``) must be the
    gateway's KEK.
    """
    log = AuditLog(audit_path(data_dir), keks=keks or _audit_keks(None))
    try:
        log.append(
            actor="cli-operator", role="admin", action=action, collection="*",
            decision="allow", detail=detail,
        )  # fmt: skip
    finally:
        log.close()


def _create_key(
    role: CredentialRole,
    name: str,
    scope: list[str],
    data_dir: Path,
    key_file: Path | None = None,
    **caps: Any,
) -> None:
    keks = _audit_keks(key_file)  # before the key exists: every key is audited
    data_dir.mkdir(parents=True, exist_ok=True)
    store = CredentialStore(credentials_path(data_dir))
    cred, token = store.create(role=role, name=name, scopes=scope, **caps)
    detail = {"key_id": cred.key_id, "name": cred.name, "role": str(role)}
    _audit(data_dir, "create-key", detail, keks=keks)
    typer.echo(f"# {role} key for {name}; the token is shown once, store it now", err=True)
    _echo({"key_id": cred.key_id, "scopes": sorted(cred.scopes), "token": token})


@partner_app.command("create")
def partner_create(
    name: PartnerName,
    scope: Scopes,
    data_dir: DataDir,
    top_k_cap: Annotated[
        int,
        typer.Option(help="Largest k per query (each result more per answer leaks more)."),
    ] = DEFAULT_TOP_K_CAP,
    rate_per_minute: Annotated[int, typer.Option(help="Sustained requests per minute.")] = 600,
    burst: Annotated[int, typer.Option(help="Requests allowed in a burst.")] = 60,
    key_file: KeyFile = None,
    allow_vector_queries: Annotated[
        bool,
        typer.Option(
            "--allow-vector-queries",
            help="Let the partner query with raw vectors (risky: basis-vector probes).",
        ),
    ] = False,
    scores: Annotated[
        ScoreRelease,
        typer.Option(
            "--scores",
            help="What answers carry: rank (no scores), coarse (rounded) or exact (risky: "
            "scores rebuild stored vectors).",
        ),
    ] = ScoreRelease.RANK,
    query_budget: Annotated[
        int, typer.Option("--query-budget", min=1, help="Answered queries per window.")
    ] = DEFAULT_QUERY_BUDGET,
    budget_window_hours: Annotated[
        float,
        typer.Option("--budget-window-hours", min=0.001, help="The budget's window in hours."),
    ] = DEFAULT_BUDGET_WINDOW_S / 3600,
) -> None:
    """Issue a partner API key (printed once; stored hashed; audited: needs the KEK)."""
    _create_key(
        CredentialRole.PARTNER,
        name,
        scope,
        data_dir,
        key_file,
        top_k_cap=top_k_cap,
        rate_per_minute=rate_per_minute,
        burst=burst,
        vector_queries=allow_vector_queries,
        score_release=scores,
        query_budget=query_budget,
        budget_window_s=max(1, round(budget_window_hours * 3600)),
    )


@node_key_app.command("create")
def node_key_create(
    node: NodeName,
    scope: Scopes,
    data_dir: DataDir,
    key_file: KeyFile = None,
) -> None:
    """Issue a node upload key (printed once; stored hashed; audited: needs the KEK)."""
    _create_key(
        CredentialRole.NODE, node, scope, data_dir, key_file, rate_per_minute=6000, burst=600
    )


@partner_app.command("revoke")
def partner_revoke(
    key_id: Annotated[str, typer.Argument()], data_dir: DataDir, key_file: KeyFile = None
) -> None:
    """Revoke a partner or node key; a running service refuses it at once (needs the KEK)."""
    keks = _audit_keks(key_file)
    store = CredentialStore(credentials_path(data_dir))
    revoked = store.revoke(key_id)
    _audit(data_dir, "revoke-key", {"key_id": key_id}, keks=keks)
    _echo(revoked.__dict__)


@partner_app.command("resume")
def partner_resume(
    key_id: Annotated[str, typer.Argument()], data_dir: DataDir, key_file: KeyFile = None
) -> None:
    """Lift a key's suspension for probing; a running service accepts it at once."""
    keks = load_keks(key_file=key_file)
    store = CredentialStore(credentials_path(data_dir))
    resumed = store.resume(key_id)
    _audit(data_dir, "resume-key", {"key_id": key_id}, keks=keks)
    _echo(resumed.__dict__)


@partner_app.command("list")
def partner_list(data_dir: DataDir, include_revoked: bool = False) -> None:
    """Every key (no tokens, no hashes)."""
    store = CredentialStore(credentials_path(data_dir))
    _echo([c.__dict__ for c in store.list(include_revoked=include_revoked)])
