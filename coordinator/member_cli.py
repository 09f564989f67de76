"""``fedembed coordinator enrol|revoke|register|members``: the consortium's members.

The same member roster as the admin API's ``/v1/members`` (:mod:`coordinator.admin.members`),
for an admin at the coordinator host's shell; errors speak in these commands' flags.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from coordinator.admin.errors import AdminError
from index_client.names import NODE, option_check
from kits.layout import AUTHORIZED_NODES, sha256_file
from kits.provisioning import load_coordinator_kit

if TYPE_CHECKING:
    from coordinator.admin.member_records import MemberView
    from coordinator.admin.members import MemberRoster

__all__ = ["add_member_commands"]


_MEMBER_WORDS = {
    "POST /v1/members/{name}/register": "`fedembed coordinator register`",
    "POST /v1/members": "`fedembed coordinator enrol`",
    "GET /v1/members": "`fedembed coordinator members`",
    "the name or auth_pub field": "--name or --auth-pub",
}
"""API words of the member roster's errors -> these commands' words."""

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="The consortium home (kits/, members/, flwr-home/ ...)."),
]
KitsOption = Annotated[
    Path | None,
    typer.Option("--kits", help="The `provision --out` folder (kits only: no SuperLink step)."),
]
ControlOption = Annotated[
    str | None,
    typer.Option(
        "--superlink-control",
        help="host:port of the SuperLink's Control API (default 127.0.0.1:9093, or "
        "FEDEMBED_ADMIN_SUPERLINK_CONTROL).",
    ),
]
MemberOption = Annotated[
    str,
    typer.Option(
        "--name", help="The member's kit name.", callback=option_check(NODE, typer.BadParameter)
    ),
]


def _one_place(home: Path | None, kits: Path | None) -> None:
    if (home is None) == (kits is None):
        raise typer.BadParameter(
            "pass either --home (the consortium home: kits, member records, SuperLink) or "
            "--kits (the `provision --out` folder), not both or neither"
        )


def _roster(home: Path, superlink_control: str | None) -> MemberRoster:
    # Flower and the kit machinery load when a member command runs: `--help` stays fast.
    from coordinator.admin.members import MemberRoster
    from coordinator.admin.settings import AdminSettings

    home = home.expanduser().absolute()
    settings = (
        AdminSettings(home=home)
        if superlink_control is None
        else AdminSettings(home=home, superlink_control=superlink_control)
    )
    return MemberRoster(settings)


def _member_json(view: MemberView) -> dict[str, object]:
    return {
        "name": view.name,
        "state": view.state,
        "fingerprint": view.fingerprint,
        "flower_node_id": None if view.flower_node_id is None else str(view.flower_node_id),
        "superlink": view.superlink,
        "status": view.status,
        "online": view.online,
        "last_seen": view.last_seen,
        "kit": view.kit,
    }


def enrol_cmd(
    name: MemberOption,
    auth_pub: Annotated[
        Path, typer.Option("--auth-pub", help="The auth.pub the member made (`node keygen`).")
    ],
    home: HomeOption = None,
    kits: KitsOption = None,
    superlink_control: ControlOption = None,
    reenrol: Annotated[
        bool, typer.Option("--reenrol", help="With --kits: allow a revoked key or name.")
    ] = False,
) -> None:
    """Enrol a new member into a running consortium; nothing else is regenerated.

    Writes nodes/NAME/ (CA certificate, DCPE keyring, the member's auth.pub, the
    authorised list; no auth.key) and adds the key to the coordinator kit. With --home it
    also registers the key with the SuperLink and keeps the member's record. Then the
    member runs `fedembed node install-auth-key`, and the key-holding member seals the
    CKKS secret to it with `fedembed node ckks-seal` (docs/key_custody.md).
    """
    from embedding_core.cli import in_cli_words
    from kits.enrolment import enrol_member

    _one_place(home, kits)
    if not auth_pub.is_file():
        raise typer.BadParameter(f"--auth-pub {auth_pub} is not a file: pass the member's auth.pub")
    text = auth_pub.read_text(encoding="ascii", errors="replace")
    if kits is not None:
        kit = enrol_member(kits, name, auth_pub=text, reenrol=reenrol)
        coordinator_dir = kits / "coordinator"
        out: dict[str, object] = {"name": name, "kit": str(kit), "superlink": "not registered"}
    else:
        if reenrol:
            raise typer.BadParameter("--reenrol works with --kits only")
        assert home is not None
        try:
            enrolled = _roster(home, superlink_control).enrol(name, text)
        except AdminError as exc:
            raise in_cli_words(exc, _MEMBER_WORDS) from None
        coordinator_dir = home / "kits" / "coordinator"
        out = {**_member_json(enrolled.member), "kit": str(enrolled.kit)}
    out.update(
        ca_fingerprint=load_coordinator_kit(coordinator_dir).ca_fingerprint,
        authorized_nodes_sha256=sha256_file(coordinator_dir / AUTHORIZED_NODES),
        next="ship the kit to the member (`fedembed node install-auth-key`); the key holder "
        "runs `fedembed node ckks-seal`, the member `fedembed node ckks-install`",
    )
    typer.echo(json.dumps(out))


def revoke_cmd(
    name: MemberOption,
    home: HomeOption = None,
    kits: KitsOption = None,
    superlink_control: ControlOption = None,
) -> None:
    """Revoke a member: no run admits it, and its replies are refused.

    Takes its key off the coordinator kit's authorised list; with --home also
    unregisters its node from the SuperLink. Its key is kept as revoked, so it is not
    enrolled again by mistake.
    """
    from embedding_core.cli import in_cli_words
    from kits.enrolment import revoke_member

    _one_place(home, kits)
    if kits is not None:
        entry = revoke_member(kits, name)
        out: dict[str, object] = {
            "name": entry.node_id,
            "state": "revoked",
            "fingerprint": entry.fingerprint,
            "revoked_at": entry.revoked_at,
            "superlink": "not told: unregister its node with `flwr supernode unregister`",
        }
        coordinator_dir = kits / "coordinator"
    else:
        assert home is not None
        try:
            out = _member_json(_roster(home, superlink_control).revoke(name))
        except AdminError as exc:
            raise in_cli_words(exc, _MEMBER_WORDS) from None
        coordinator_dir = home / "kits" / "coordinator"
    out["authorized_nodes_sha256"] = sha256_file(coordinator_dir / AUTHORIZED_NODES)
    typer.echo(json.dumps(out))


def register_cmd(
    name: MemberOption,
    home: HomeOption = None,
    kits: KitsOption = None,
    superlink_control: ControlOption = None,
    flwr_home: Annotated[
        Path | None,
        typer.Option(
            "--flwr-home",
            help="With --kits: Flower's home for the connection (default $FLWR_HOME or ~/.flwr).",
        ),
    ] = None,
) -> None:
    r"""Register an enrolled member's auth key with the SuperLink (`flwr supernode register`).

    Writes the \[superlink.fedembed] connection into FLWR_HOME/config.toml if it is
    missing (the Control API address and the consortium CA), registers the key the
    coordinator kit authorises for --name, and prints the node id, the connection and the
    equivalent `flwr` command. Register a member before its node starts.
    """
    import os
    import tempfile

    from coordinator.admin.superlink import ensure_flwr_connection
    from deployment.flower_nodes import register_node_key
    from embedding_core.cli import in_cli_words
    from embedding_core.errors import FedembedError
    from kits.layout import CA_CERT

    _one_place(home, kits)
    if home is not None:
        roster = _roster(home, superlink_control)
        try:
            view = roster.register(name)
        except AdminError as exc:
            raise in_cli_words(exc, _MEMBER_WORDS) from None
        out: dict[str, object] = {
            **_member_json(view),
            "flwr_home": str(roster.home.flwr_home),
            "connection": "fedembed",
            "address": roster.settings.superlink_control,
        }
        typer.echo(json.dumps(out))
        return
    assert kits is not None
    coordinator = load_coordinator_kit(kits / "coordinator")
    key = coordinator.authorized_nodes.get(name)
    if key is None:
        raise FedembedError(
            f"--name {name}: no member of that name is on the coordinator kit's authorised list",
            expected="one of " + ", ".join(sorted(coordinator.authorized_nodes)),
            fix="enrol it first (`fedembed coordinator enrol`) or correct --name",
        )
    home_dir = flwr_home or Path(os.environ.get("FLWR_HOME") or Path.home() / ".flwr")
    address = superlink_control or "127.0.0.1:9093"
    connection = ensure_flwr_connection(
        home_dir, address=address, ca_cert=kits / "coordinator" / CA_CERT
    )
    with tempfile.TemporaryDirectory(prefix="member-key-") as folder:
        key_file = Path(folder) / f"{name}.auth.pub"
        key_file.write_text(key.strip() + "\n", encoding="ascii")
        node_id = register_node_key(
            public_key=key_file, name=name, connection=connection, flwr_home=home_dir
        )
    typer.echo(
        json.dumps(
            {
                "name": name,
                "flower_node_id": str(node_id),
                "flwr_home": str(home_dir),
                "connection": connection,
                "address": address,
                "did": f"FLWR_HOME={home_dir} flwr supernode register "
                f"{kits / 'nodes' / name / 'auth.pub'} {connection} --name {name}",
            }
        )
    )


def members_cmd(
    home: Annotated[Path, typer.Option("--home", help="The consortium home.")],
    superlink_control: ControlOption = None,
) -> None:
    """List the members by kit name with their Flower node id, online state and last seen."""
    roster = _roster(home, superlink_control).list()
    typer.echo(
        json.dumps(
            {
                "members": [_member_json(v) for v in roster.members],
                "superlink_reachable": roster.superlink_reachable,
                "unmatched_nodes": [n.as_dict() for n in roster.unmatched_nodes],
            },
            indent=2,
        )
    )


def add_member_commands(app: typer.Typer) -> None:
    """Add ``enrol``, ``revoke``, ``register``, ``members`` to ``app``."""
    app.command("enrol")(enrol_cmd)
    app.command("revoke")(revoke_cmd)
    app.command("register")(register_cmd)
    app.command("members")(members_cmd)
