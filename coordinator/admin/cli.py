"""``fedembed coordinator admin``: serve the admin API, manage its tokens, verify its trail.

Every command takes ``--home`` (or ``FEDEMBED_ADMIN_HOME``), the consortium home folder.
Token commands act as the host's operator: they write the same token file and the same
audit trail as the running service (the trail names the actor ``local``), so the first
admin token is made here::

    fedembed coordinator admin token create --home HOME --name ops-alice --role admin

Errors are one line naming the flag (or the environment variable) to fix, exit status 2;
a trail that does not verify exits 1.
"""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from coordinator.admin.settings import AdminSettings
from coordinator.admin.tokens import AdminRole, AdminToken
from coordinator.admin.trail_anchor import load_trail_key
from coordinator.admin.trail_records import TRAIL_FILE
from coordinator.admin.trail_verification import verify_trail
from embedding_core.errors import FedembedError

__all__ = ["admin_app", "local_actor"]

EXIT_USAGE = 2
EXIT_TAMPERED = 1
LOCAL_ACTOR_ID = "local"

admin_app = typer.Typer(
    help="The consortium admin API: serve it, issue and revoke its tokens, verify its audit trail.",
    no_args_is_help=True,
)
token_app = typer.Typer(help="Admin API tokens (shown once, stored hashed).", no_args_is_help=True)
admin_app.add_typer(token_app, name="token")

Home = Annotated[
    Path | None,
    typer.Option(
        "--home",
        envvar="FEDEMBED_ADMIN_HOME",
        help="The consortium home folder (kits/, runs/, models/, admin/ ...).",
        show_envvar=True,
    ),
]
_ENV = {"gateway_admin_token": "FEDEMBED_INDEX_ADMIN_TOKEN"}


def local_actor() -> AdminToken:
    """The trail's actor for commands run on the coordinator host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (e.g. in a container)
        user = "unknown"
    created = datetime.now(UTC).isoformat(timespec="seconds")
    return AdminToken(LOCAL_ACTOR_ID, f"cli:{user}"[:64], AdminRole.ADMIN, created)


@contextlib.contextmanager
def _cli_errors() -> Iterator[None]:
    """Show a FedembedError as one line on stderr and exit 2 (no traceback)."""
    try:
        yield
    except FedembedError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=EXIT_USAGE) from None


def _settings(**flags: Any) -> AdminSettings:
    """AdminSettings from the given flags (None: not given) over the environment."""
    given = {name: value for name, value in flags.items() if value is not None}
    try:
        return AdminSettings(**given)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "settings"
            env = _ENV.get(field, f"FEDEMBED_ADMIN_{field.upper()}")
            where = f"--{field.replace('_', '-')}" if field in flags else env
            if field in flags and field not in given:
                where += f" (or {env})"
            problems.append(f"{where}: {error['msg']}")
        raise FedembedError(
            "; ".join(problems),
            expected="the values described by `fedembed coordinator admin serve --help`",
            fix="correct the flag or environment variable named above",
        ) from None


def _echo(document: Any) -> None:
    typer.echo(json.dumps(document, indent=2))


def _record(token: AdminToken) -> dict[str, Any]:
    return {
        "token_id": token.token_id,
        "name": token.name,
        "role": token.role.value,
        "created": token.created,
        "revoked": token.revoked,
    }


@admin_app.command("serve")
def serve_cmd(
    home: Home = None,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (FEDEMBED_ADMIN_HOST).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (FEDEMBED_ADMIN_PORT).")] = None,
    superlink_control: Annotated[
        str | None,
        typer.Option(help="host:port of the SuperLink's Control API."),
    ] = None,
    project_dir: Annotated[
        Path | None, typer.Option(help="The Flower App folder `flwr run` submits.")
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Datasets for the central evaluation.")
    ] = None,
    policy: Annotated[Path | None, typer.Option(help="The consortium policy (TOML).")] = None,
    gateway_url: Annotated[str | None, typer.Option(help="The query gateway's URL.")] = None,
    gateway_ca: Annotated[
        Path | None, typer.Option(help="CA certificate of an https:// gateway.")
    ] = None,
) -> None:
    """Serve the admin API (OpenAPI at /openapi.json, metrics at /metrics).

    Every flag also reads from FEDEMBED_ADMIN_<FLAG>; the gateway's admin token only from
    FEDEMBED_INDEX_ADMIN_TOKEN, the /metrics scrape token from FEDEMBED_ADMIN_METRICS_TOKEN.
    Members must not reach this port: bind it to the coordinator's private address.
    """
    from coordinator.admin.server import serve  # uvicorn and the app: only when serving

    with _cli_errors():
        settings = _settings(
            home=home,
            host=host,
            port=port,
            superlink_control=superlink_control,
            project_dir=project_dir,
            data_dir=data_dir,
            policy=policy,
            gateway_url=gateway_url,
            gateway_ca=gateway_ca,
        )
        serve(settings)


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="Who or what holds the token.")],
    role: Annotated[
        AdminRole, typer.Option("--role", help="admin, operator (runs, models) or auditor.")
    ],
    home: Home = None,
) -> None:
    """Issue a token; its secret is printed once (store it now)."""
    from coordinator.admin.server import open_state

    with _cli_errors():
        state = open_state(_settings(home=home))
        with contextlib.closing(state.trail):
            token, secret = state.tokens.create(name, role)
            detail = {"name": name, "role": role.value}
            state.trail.record(local_actor(), "token.create", token.token_id, detail=detail)
    typer.echo(f"# {role.value} token {token.token_id}: the secret is shown once", err=True)
    _echo({**_record(token), "secret": secret})


@token_app.command("list")
def token_list(home: Home = None) -> None:
    """Every token (never a secret), revoked ones with their revocation time."""
    from coordinator.admin.token_store import TOKENS_FILE, AdminTokenStore

    with _cli_errors():
        settings = _settings(home=home)
        tokens = AdminTokenStore(settings.consortium.state / TOKENS_FILE).list()
    _echo([_record(t) for t in tokens])


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[str, typer.Argument(help="The token_id `token list` shows.")],
    home: Home = None,
) -> None:
    """Revoke a token at once (the running service refuses its next request)."""
    from coordinator.admin.server import open_state

    with _cli_errors():
        state = open_state(_settings(home=home))
        with contextlib.closing(state.trail):
            token = state.tokens.revoke(token_id)
            detail = {"name": token.name}
            state.trail.record(local_actor(), "token.revoke", token_id, detail=detail)
    _echo(_record(token))


@admin_app.command("verify-trail")
def verify_trail_cmd(
    home: Home = None,
    expected_head: Annotated[
        str | None,
        typer.Option(
            "--expected-head",
            help="A head hash you recorded earlier off this host: it must still be in the "
            "trail (detects a rollback or a rewrite with the key).",
        ),
    ] = None,
) -> None:
    """Verify the audit trail: every record's hash and link, and its keyed head anchor.

    Prints the head hash: copy it somewhere this host cannot write (a ticket, a signed
    e-mail) and pass it back with --expected-head next time. Exit 1 when it does not verify.
    """
    with _cli_errors():
        settings = _settings(home=home)
        state = settings.consortium.state
        env_key = settings.trail_key.get_secret_value() if settings.trail_key else None
        key = load_trail_key(state, env_key, create=False)
        result = verify_trail(state / TRAIL_FILE, key, expected_head=expected_head)
    _echo(
        {
            "ok": result.ok,
            "entries": result.entries,
            "head_hash": result.head_hash,
            "problem": result.problem,
            "line": result.line,
            "note": result.note,
        }
    )
    if not result.ok:
        raise typer.Exit(code=EXIT_TAMPERED)
