"""``fedembed coordinator``: provision the consortium, run the SuperLink, show the ledger."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from coordinator.admin.cli import admin_app
from coordinator.member_cli import add_member_commands
from coordinator.run_folder import LEDGER_FILE
from deployment.flower_processes import start_superlink
from index_client.names import NODE, option_check
from kits.layout import AUTHORIZED_NODES, ProvisioningError, sha256_file
from kits.provisioning import DEFAULT_DCPE_BETA, load_coordinator_kit, provision

if TYPE_CHECKING:
    pass

__all__ = ["coordinator_app"]

_PROVISION_FLAGS = {
    "pass force=True": "pass --force",
    "force=True": "--force",
    "another out_dir": "another --out",
    "out_dir": "--out",
    "dcpe_beta=": "--dcpe-beta ",
    "dcpe_beta": "--dcpe-beta",
    "superlink_host": "--superlink-host",
}
"""Python-API words of provision()'s errors -> this command's flags."""

coordinator_app = typer.Typer(
    help="Coordinator: provision kits, install the public CKKS context, run the SuperLink, "
    "inspect federation ledgers."
)
coordinator_app.add_typer(admin_app, name="admin")


@coordinator_app.command("provision")
def provision_cmd(
    out: Annotated[
        Path, typer.Option("--out", help="Folder for admin/, coordinator/, gateway/, nodes/.")
    ],
    node: Annotated[
        list[str],
        typer.Option(
            "--node",
            help="Member node id (repeat).",
            callback=option_check(NODE, typer.BadParameter),
        ),
    ],
    superlink_host: Annotated[
        str, typer.Option(help="SuperLink host in the TLS cert.")
    ] = "127.0.0.1",
    dcpe_beta: Annotated[
        float, typer.Option("--dcpe-beta", help="Approximation bound of the DCPE key.")
    ] = DEFAULT_DCPE_BETA,
    force: Annotated[bool, typer.Option(help="Replace existing kits.")] = False,
    node_key: Annotated[
        list[str] | None,
        typer.Option(
            "--node-key",
            help="ID=PATH: a member's own auth.pub (from `fedembed node keygen`); its kit "
            "then gets no auth.key (repeat).",
        ),
    ] = None,
) -> None:
    """Write node kits, the coordinator kit and the gateway kit (a consortium admin step).

    No CKKS key pair is made here: one member makes it (`fedembed node ckks-keygen`) and
    the coordinator installs the public half (`ckks-install-public`). Give each member's
    own auth.pub with --node-key so that no node auth key passes through this step
    either (docs/key_custody.md).
    """
    from embedding_core.cli import in_cli_words
    from embedding_core.errors import FedembedError

    node_keys: dict[str, str] = {}
    for item in node_key or []:
        node_id, sep, path = item.partition("=")
        if not sep or not Path(path).is_file():
            raise typer.BadParameter(f"--node-key {item!r}: expected ID=PATH to an auth.pub")
        node_keys[node_id] = Path(path).read_text(encoding="ascii")
    try:
        result = provision(
            out,
            node_ids=node,
            superlink_host=superlink_host,
            dcpe_beta=dcpe_beta,
            force=force,
            node_keys=node_keys,
        )
    except ProvisioningError as exc:
        raise in_cli_words(exc, _PROVISION_FLAGS) from None
    except OSError as exc:
        raise FedembedError(
            f"--out {out}: cannot write the kits there ({exc.strerror or exc})",
            expected="a new or empty folder this user may create and write",
            fix="pass --out a writable folder outside the source tree, e.g. ~/consortium/kits",
        ) from None
    typer.echo(
        json.dumps(
            {
                "coordinator": str(result.coordinator_dir),
                "gateway": str(result.gateway_dir),
                "nodes": {k: str(v) for k, v in result.node_dirs.items()},
                "admin": str(result.admin_dir),
                "ca_fingerprint": result.ca_fingerprint,
                "authorized_nodes_sha256": sha256_file(result.coordinator_dir / AUTHORIZED_NODES),
                "next": "key ceremony: `fedembed node ckks-keygen` on the key-holding member",
            }
        )
    )


@coordinator_app.command("ckks-install-public")
def ckks_install_public_cmd(
    kit: Annotated[Path, typer.Option("--kit", help="The coordinator kit folder.")],
    public: Annotated[
        Path, typer.Option("--public", help="The key holder's ckks_public.bundle.json.")
    ],
) -> None:
    """Verify the key holder's signed public CKKS context and install it in the kit."""
    from kits.ckks_ceremony import install_ckks_public

    typer.echo(json.dumps({"ckks_fingerprint": install_ckks_public(kit, public)}))


@coordinator_app.command("superlink")
def superlink_cmd(
    kit: Annotated[Path, typer.Option("--kit", help="The coordinator kit folder.")],
    state_dir: Annotated[Path, typer.Option("--state-dir", help="SuperLink database/logs.")],
    port: Annotated[
        int, typer.Option(min=1, max=65535, help="HTTPS port on 127.0.0.1 (1-65535).")
    ] = 9093,
) -> None:
    """Run a SuperLink over TLS with SuperNode authentication until stopped.

    Ctrl-C, SIGTERM or SIGHUP stop the SuperLink and everything it started; when it
    fails on its own, its error is printed and its exit status is this command's.
    """
    coordinator_kit = load_coordinator_kit(kit)
    state_dir.mkdir(parents=True, exist_ok=True)
    link = start_superlink(coordinator_kit=coordinator_kit, state_dir=state_dir, port=port)
    status = link.run_in_foreground(
        ready=lambda: typer.echo(
            f"SuperLink on {link.extra['address']} (log: {link.log_path}); Ctrl-C stops it"
        )
    )
    if status:
        reason = link.error_line() or "it logged no error"
        typer.echo(
            f"error: the SuperLink exited with status {status}: {reason}. "
            f"Fix: see its log {link.log_path}.",
            err=True,
        )
        raise typer.Exit(status)


@coordinator_app.command("ledger")
def ledger_cmd(
    run_dir: Annotated[
        Path, typer.Argument(help="A run's folder (<home>/runs/<run>, or the run's out-dir).")
    ],
) -> None:
    """Print a federation's privacy ledger (per-node epsilon, node-level epsilon, refusals)."""
    path = run_dir / LEDGER_FILE
    if not path.is_file():
        what = "is not a folder" if not run_dir.is_dir() else f"holds no {LEDGER_FILE}"
        raise typer.BadParameter(
            f"RUN_DIR {run_dir} {what}; expected a run's folder, which gets {LEDGER_FILE} "
            "after its first round; pass <home>/runs/<run> (GET /v1/runs lists the runs)"
        )
    typer.echo(path.read_text())


add_member_commands(coordinator_app)
