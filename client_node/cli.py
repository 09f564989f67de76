"""``fedembed node``: what an on-premise operator runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from client_node.analysis.cli import analyse_app
from client_node.cli_options import (
    CHECK_HELP,
    MAX_EPSILON_LIMIT,
    REGISTER_FIX,
    check_max_epsilon,
    data_dir_exists,
)
from embedding_core.cli import EncoderBackendOpt
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND
from federation.node_privacy import DEFAULT_MAX_NOISE_SHARES, NodePrivacy
from index_client.names import COLLECTION, NODE, option_check

__all__ = ["node_app"]

node_app = typer.Typer(help="Member node: start the SuperNode, check data, show the ledger.")
node_app.add_typer(analyse_app, name="analyse")


@node_app.command("start")
def start_cmd(
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            callback=data_dir_exists,
            help="Node data folder (formats: `fedembed node check --help`).",
        ),
    ],
    kit: Annotated[Path, typer.Option("--kit", help="This node's kit folder.")],
    superlink: Annotated[str, typer.Option("--superlink", help="SuperLink host:port.")],
    max_epsilon: Annotated[
        float,
        typer.Option(
            "--max-epsilon",
            callback=check_max_epsilon,
            help="This node's whole privacy budget epsilon, every run and round composed "
            f"(0 < epsilon <= {MAX_EPSILON_LIMIT:g}; the consortium default is 8). Above "
            f"{MAX_EPSILON_LIMIT:g} DP bounds nothing: a membership-inference attacker's "
            "proven AUC bound is then 1.0, so such a value is refused as a typo.",
        ),
    ],
    name: Annotated[
        str | None,
        typer.Option(
            help="Node name (default: kit's node id).",
            callback=option_check(NODE, typer.BadParameter),
        ),
    ] = None,
    require_dp: Annotated[
        bool,
        typer.Option(
            "--require-dp/--allow-no-dp", help="Refuse rounds without DP (default: refuse)."
        ),
    ] = True,
    max_noise_shares: Annotated[
        int,
        typer.Option(
            "--max-noise-shares",
            min=1,
            help="Most noise shares accepted (each node adds 1/sqrt(shares) of the noise).",
        ),
    ] = DEFAULT_MAX_NOISE_SHARES,
    min_noise_multiplier: Annotated[
        float,
        typer.Option(
            "--min-noise-multiplier", min=0.0, help="Smallest noise multiplier of a DP step."
        ),
    ] = 0.0,
    declare_record_count_public: Annotated[
        bool,
        typer.Option(
            "--declare-record-count-public",
            help="Declare this node's record count public: it is then sent to rounds "
            "weighted by declared counts (default: private; such rounds are refused).",
        ),
    ] = False,
) -> None:
    """Validate data and kit, then run an authenticated TLS SuperNode until stopped.

    The privacy options bound what the coordinator may ask of this node: a round that
    asks for less is refused before anything is trained or charged. Its auth.pub must be
    registered with the SuperLink first (docs/operations.md). Ctrl-C, SIGTERM or SIGHUP
    stop the SuperNode and everything it started; when the SuperNode fails on its own,
    its error is printed and its exit status is this command's.
    """
    # Commands import their machinery (torch, Flower) when they run: `--help` stays fast.
    from client_node.node_data import load_node_data
    from deployment.flower_processes import start_supernode
    from kits.loader import load_node_kit

    node_privacy = NodePrivacy(
        max_epsilon=max_epsilon,
        require_dp=require_dp,
        max_noise_shares=max_noise_shares,
        min_noise_multiplier=min_noise_multiplier,
        public_record_count=declare_record_count_public,
    )

    node_kit = load_node_kit(kit)
    data = load_node_data(data_dir)
    node_name = name or node_kit.node_id
    node = start_supernode(
        node_kit=node_kit,
        data_dir=data_dir,
        superlink_address=superlink,
        node_name=node_name,
        log_dir=data.state_dir,
        node_privacy=node_privacy,
    )
    status = node.run_in_foreground(
        ready=lambda: typer.echo(
            f"SuperNode {node_name}: {len(data.interactions)} interactions, "
            f"{len(data.documents)} documents, budget epsilon {max_epsilon}; log {node.log_path}"
        )
    )
    if status is None:
        typer.echo(f"SuperNode {node_name} stopped")
        return
    if status != 0:
        reason = node.error_line() or "it logged no error"
        typer.echo(
            f"error: SuperNode {node_name} exited with status {status}: {reason}. "
            f"Fix: {REGISTER_FIX}; the whole log is {node.log_path}.",
            err=True,
        )
        raise typer.Exit(status)


@node_app.command("check", help=CHECK_HELP)
def check_cmd(
    data_dir: Annotated[
        Path,
        typer.Option(
            "--data-dir",
            callback=data_dir_exists,
            help="Node data folder: documents.jsonl and interactions.jsonl.",
        ),
    ],
) -> None:
    """Validate the node's documents and interactions (formats: ``CHECK_HELP``)."""
    from client_node.node_data import load_node_data

    data = load_node_data(data_dir)
    typer.echo(f"ok: {len(data.documents)} documents, {len(data.interactions)} interactions")


@node_app.command("ledger")
def ledger_cmd(
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", callback=data_dir_exists, help="Node data folder."),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document.")] = False,
) -> None:
    """Show the node's privacy ledger: the total, then each run and round it was charged.

    Per round: the epsilon it added to the node's composed total, the total after it,
    the observer the charge holds for, and the DP-SGD parameters. Refused rounds (nothing
    charged) are listed from the SuperNode logs in state/.
    """
    from client_node.ledger_view import read_ledger_view

    view = read_ledger_view(data_dir)
    if as_json:
        typer.echo(json.dumps(view.to_json(), indent=2))
        return
    for line in view.lines():
        typer.echo(line)


@node_app.command("upload")
def upload_cmd(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Node data folder.")],
    gateway: Annotated[str, typer.Option("--gateway", help="Query gateway URL.")],
    collection: Annotated[
        str,
        typer.Option(
            "--collection",
            help="Target collection.",
            callback=option_check(COLLECTION, typer.BadParameter),
        ),
    ],
    node_id: Annotated[
        str,
        typer.Option(
            "--node-id",
            help="This node's id (key owner).",
            callback=option_check(NODE, typer.BadParameter),
        ),
    ],
    dcpe_keyring: Annotated[
        Path | None, typer.Option(help="Tenant DCPE keyring (kit) for DCPE collections.")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Encoder folder (default: bundled).")] = None,
    encoder_backend: EncoderBackendOpt = DEFAULT_ENCODER_BACKEND,
    batch_size: Annotated[int, typer.Option(help="Documents per upsert.")] = 256,
    ca: Annotated[
        Path | None,
        typer.Option("--ca", help="CA certificate of an https:// gateway (the kit's ca.crt)."),
    ] = None,
) -> None:
    """Embed this node's documents and upload protected vectors (key: FEDEMBED_NODE_TOKEN).

    The collection records the encoder space of the first vectors it gets (model and
    --encoder-backend) and refuses vectors of another: every node of a collection
    uploads with the same --encoder-backend, the gateway's.
    """
    import os

    from client_node.index_upload import upload_documents
    from embedding_core.encoder import Encoder
    from embedding_core.errors import FedembedError

    token = os.environ.get("FEDEMBED_NODE_TOKEN")
    if not token:
        raise FedembedError(
            "FEDEMBED_NODE_TOKEN is not set",
            expected="the node upload key issued by `fedembed index node-key create`",
            fix="export FEDEMBED_NODE_TOKEN=<key> (keys never go on the command line)",
        )
    report = upload_documents(
        data_dir,
        node_id=node_id,
        gateway_url=gateway,
        token=token,
        collection=collection,
        encoder=Encoder.load(model, backend=encoder_backend),
        dcpe_key_file=dcpe_keyring,
        batch_size=batch_size,
        verify=str(ca) if ca is not None else True,
    )
    typer.echo(json.dumps(report.__dict__))


@node_app.command("keygen")
def keygen_cmd(
    out: Annotated[Path, typer.Option("--out", help="New folder for auth.key and auth.pub.")],
) -> None:
    """Make this member's node auth key pair here; send only auth.pub to the provisioner.

    Then `fedembed coordinator provision --node-key ID=auth.pub` makes a kit without
    auth.key, and `fedembed node install-auth-key` puts this auth.key into it, so no
    one but this member ever holds it (docs/key_custody.md).
    """
    from kits.node_keys import auth_key_fingerprint, generate_auth_key

    public = generate_auth_key(out)
    typer.echo(
        json.dumps(
            {
                "auth_pub": str(public),
                "fingerprint": auth_key_fingerprint(public.read_text(encoding="ascii")),
            }
        )
    )


@node_app.command("install-auth-key")
def install_auth_key_cmd(
    kit: Annotated[Path, typer.Option("--kit", help="This node's kit folder.")],
    key: Annotated[Path, typer.Option("--key", help="The auth.key `node keygen` made.")],
) -> None:
    """Put this member's own auth.key into the kit made from its auth.pub (0600)."""
    from kits.node_keys import install_auth_key

    typer.echo(json.dumps({"fingerprint": install_auth_key(kit, key)}))


@node_app.command("ckks-keygen")
def ckks_keygen_cmd(
    kit: Annotated[Path, typer.Option("--kit", help="This (key-holding) node's kit folder.")],
    out: Annotated[Path, typer.Option("--out", help="New folder for the bundles to relay.")],
) -> None:
    """Make the consortium's CKKS key pair here; write signed, sealed bundles to relay.

    Installs the secret context in this kit; ``--out`` gets the coordinator's public
    bundle and one bundle per other member, sealed to that member's kit key. Compare the
    printed fingerprint with the one every install prints (docs/key_custody.md).
    """
    from kits.ckks_ceremony import ckks_keygen
    from kits.layout import AUTHORIZED_NODES, sha256_file

    bundles = ckks_keygen(kit, out)
    typer.echo(
        json.dumps(
            {
                "ckks_fingerprint": bundles.ckks_fingerprint,
                "authorized_nodes_sha256": sha256_file(kit / AUTHORIZED_NODES),
                "public_bundle": str(bundles.public_bundle),
                "secret_bundles": {k: str(v) for k, v in bundles.secret_bundles.items()},
            }
        )
    )


@node_app.command("ckks-install")
def ckks_install_cmd(
    kit: Annotated[Path, typer.Option("--kit", help="This node's kit folder.")],
    bundle: Annotated[Path, typer.Option("--bundle", help="The key holder's bundle for it.")],
) -> None:
    """Verify the key holder's signed bundle, open it with this kit's key, install it.

    Compare both printed fingerprints with the key holder's, out of band.
    """
    from kits.ckks_ceremony import install_ckks_secret
    from kits.layout import AUTHORIZED_NODES, sha256_file

    fingerprint = install_ckks_secret(kit, bundle)
    typer.echo(
        json.dumps(
            {
                "ckks_fingerprint": fingerprint,
                "authorized_nodes_sha256": sha256_file(kit / AUTHORIZED_NODES),
            }
        )
    )


@node_app.command("ckks-seal")
def ckks_seal_cmd(
    kit: Annotated[
        Path, typer.Option("--kit", help="This (key-holding) node's kit, with the CKKS secret.")
    ],
    member: Annotated[
        str,
        typer.Option(
            "--member",
            help="The newly enrolled member's kit name.",
            callback=option_check(NODE, typer.BadParameter),
        ),
    ],
    auth_pub: Annotated[
        Path, typer.Option("--auth-pub", help="The new member's auth.pub (its kit's auth.pub).")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder for the bundle to relay.")],
) -> None:
    """Seal this kit's CKKS secret context to a member enrolled after the key ceremony.

    Compare the printed fingerprint of --auth-pub with the one the new member's
    `fedembed node keygen` printed, out of band, before relaying the bundle; the member
    installs it with `fedembed node ckks-install` (docs/key_custody.md).
    """
    from embedding_core.cli import in_cli_words
    from kits.ckks_ceremony import ckks_seal_for
    from kits.layout import ProvisioningError
    from kits.node_keys import auth_key_fingerprint

    if not auth_pub.is_file():
        raise typer.BadParameter(f"--auth-pub {auth_pub} is not a file: pass the member's auth.pub")
    text = auth_pub.read_text(encoding="ascii", errors="replace")
    try:
        bundle = ckks_seal_for(kit, out, node_id=member, auth_pub=text)
    except ProvisioningError as exc:
        raise in_cli_words(exc, {"the new member's name": "--member"}) from None
    typer.echo(
        json.dumps(
            {
                "bundle": str(bundle),
                "member": member,
                "auth_pub_fingerprint": auth_key_fingerprint(text),
                "next": f"relay the bundle to {member}: `fedembed node ckks-install --kit KIT "
                f"--bundle {bundle.name}`",
            }
        )
    )


@node_app.command("accept-members")
def accept_members_cmd(
    kit: Annotated[Path, typer.Option("--kit", help="This node's kit folder.")],
    authorized_nodes: Annotated[
        Path,
        typer.Option("--authorized-nodes", help="The consortium's current authorized_nodes.json."),
    ],
    sha256: Annotated[
        str,
        typer.Option(
            "--sha256",
            help="Its SHA-256 as the consortium admin gave it to you out of band "
            "(`coordinator enrol` and `revoke` print authorized_nodes_sha256).",
        ),
    ],
) -> None:
    """Take the consortium's member list after an enrolment or a revocation.

    This node checks signed CKKS contributions against its own kit's list: until it
    takes the new one it refuses sets that hold a member enrolled after it. The list is
    accepted only with the pinned digest and with this node's own key on it.
    """
    from kits.member_list import accept_member_list

    digest = accept_member_list(kit, authorized_nodes, sha256=sha256)
    typer.echo(json.dumps({"authorized_nodes_sha256": digest}))
