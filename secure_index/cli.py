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
from embedding_core.errors import FedembedError
from secure_index.index.hnsw_collection import CollectionSpec, Metric, Protection
from secure_index.index.index_store import IndexStore
from secure_index.sealing import KeyFileKeks, load_keks, sealed_kek_id
from secure_index.service.audit_log import AuditLog, verify_audit_log
from secure_index.service.credentials import CredentialRole, CredentialStore
from secure_index.service.settings import (
    STORE_DIR,
    ServiceSettings,
    audit_path,
    credentials_path,
)

__all__ = ["index_app", "partner_app"]

index_app = typer.Typer(help="Encrypted vector index: serve, keys, collections, audit log.")
keys_app = typer.Typer(help="Key-encryption keys (KEK): create, rotate, retire, list.")
collection_app = typer.Typer(help="Collections (offline, with the service stopped).")
node_key_app = typer.Typer(help="Per-node upload keys.")
partner_app = typer.Typer(help="Partner API keys: create, revoke, list.")
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
        ("adapter_path", adapter),
        ("dcpe_key_file", dcpe_key_file),
        ("ckks_key_file", ckks_key_file),
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
            expected="FEDEMBED_INDEX_ADMIN_TOKEN set (and the store token for split roles)",
            fix="export the missing variables (see docs/index.md) and retry",
        ) from None
    from secure_index.service.server import serve  # the gateway loads torch: only here

    serve(settings)


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
) -> None:
    """Add a KEK version and re-wrap every file's data key under it (service stopped)."""
    keks = KeyFileKeks.load(key_file)
    new_id = keks.rotate()
    with IndexStore(data_dir / STORE_DIR, keks=keks, tenant=tenant, background=False) as store:
        changed = store.rewrap()
    _echo({"primary": new_id, "rewrapped_files": changed})


@keys_app.command("retire")
def keys_retire(
    kek_id: Annotated[str, typer.Argument(help="The old KEK version to remove.")],
    key_file: Annotated[Path, typer.Option("--key-file")],
    data_dir: DataDir,
) -> None:
    """Remove an old KEK version, refusing while any index file still needs it."""
    keks = KeyFileKeks.load(key_file)
    still = [str(p) for p in (data_dir / STORE_DIR).rglob("*.sealed") if sealed_kek_id(p) == kek_id]
    if still:
        raise KeyManagementError(
            f"{len(still)} file(s) still use {kek_id}, e.g. {still[0]}",
            expected="no file wrapped under the KEK being retired",
            fix="run `fedembed index keys rotate` first (it re-wraps every file)",
        )
    keks.retire(kek_id)
    _echo({"retired": kek_id, "primary": keks.primary_id})


@index_app.command("verify-audit")
def verify_audit(
    data_dir: DataDir,
    expected_head: Annotated[
        str | None, typer.Option(help="Head hash you recorded earlier (detects truncation).")
    ] = None,
) -> None:
    """Check the hash chain of the audit log; exit 1 if any entry was edited or removed."""
    result = verify_audit_log(audit_path(data_dir), expected_head=expected_head)
    _echo(result.__dict__)
    if not result.ok:
        raise typer.Exit(code=1)


@collection_app.command("create")
def collection_create(
    name: Annotated[str, typer.Argument(help="Collection name.")],
    data_dir: DataDir,
    dimension: Annotated[int, typer.Option("--dim", help="Vector dimension.")] = 384,
    metric: Annotated[str, typer.Option(help="cosine | ip | l2")] = "cosine",
    protection: Annotated[str, typer.Option(help="at-rest | dcpe")] = "at-rest",
    key_file: KeyFile = None,
    tenant: Tenant = "consortium",
) -> None:
    """Create a collection in the data dir (the service must be stopped)."""
    spec = CollectionSpec(name, dimension, metric=Metric(metric), protection=Protection(protection))
    keks = load_keks(key_file=key_file)
    with IndexStore(data_dir / STORE_DIR, keks=keks, tenant=tenant, background=False) as store:
        _echo(store.create_collection(spec).__dict__)


def _audit(data_dir: Path, action: str, detail: dict[str, str]) -> None:
    """Key operations from the CLI join the service's hash chain (file-locked appends)."""
    log = AuditLog(audit_path(data_dir))
    try:
        log.append(
            actor="cli-operator", role="admin", action=action, collection="*",
            decision="allow", detail=detail,
        )  # fmt: skip
    finally:
        log.close()


def _create_key(
    role: CredentialRole, name: str, scope: list[str], data_dir: Path, **caps: int
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    store = CredentialStore(credentials_path(data_dir))
    cred, token = store.create(role=role, name=name, scopes=scope, **caps)
    _audit(data_dir, "create-key", {"key_id": cred.key_id, "name": cred.name, "role": str(role)})
    typer.echo(f"# {role} key for {name}; the token is shown once, store it now", err=True)
    _echo({"key_id": cred.key_id, "scopes": sorted(cred.scopes), "token": token})


@partner_app.command("create")
def partner_create(
    name: Annotated[str, typer.Argument(help="Partner name.")],
    scope: Annotated[list[str], typer.Option("--scope", help="Collection (repeat).")],
    data_dir: DataDir,
    top_k_cap: Annotated[int, typer.Option(help="Largest k per query.")] = 100,
    rate_per_minute: Annotated[int, typer.Option(help="Sustained requests per minute.")] = 600,
    burst: Annotated[int, typer.Option(help="Requests allowed in a burst.")] = 60,
) -> None:
    """Issue a partner API key (printed once; stored hashed)."""
    _create_key(
        CredentialRole.PARTNER,
        name,
        scope,
        data_dir,
        top_k_cap=top_k_cap,
        rate_per_minute=rate_per_minute,
        burst=burst,
    )


@node_key_app.command("create")
def node_key_create(
    node: Annotated[str, typer.Argument(help="Node id (owner of its uploads).")],
    scope: Annotated[list[str], typer.Option("--scope", help="Collection (repeat).")],
    data_dir: DataDir,
) -> None:
    """Issue a node upload key (printed once; stored hashed)."""
    _create_key(CredentialRole.NODE, node, scope, data_dir, rate_per_minute=6000, burst=600)


@partner_app.command("revoke")
def partner_revoke(key_id: Annotated[str, typer.Argument()], data_dir: DataDir) -> None:
    """Revoke a partner or node key; a running service refuses it at once."""
    store = CredentialStore(credentials_path(data_dir))
    revoked = store.revoke(key_id)
    _audit(data_dir, "revoke-key", {"key_id": key_id})
    _echo(revoked.__dict__)


@partner_app.command("list")
def partner_list(data_dir: DataDir, include_revoked: bool = False) -> None:
    """Every key (no tokens, no hashes)."""
    store = CredentialStore(credentials_path(data_dir))
    _echo([c.__dict__ for c in store.list(include_revoked=include_revoked)])
