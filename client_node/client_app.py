"""The member node's Flower ClientApp.

``train`` runs one local round (``local_round.run_local_round``) on the data folder
given by the SuperNode's ``--node-config data-dir=...``; a node over its privacy
budget replies with an error that names the node and the numbers. In CKKS mode the
``ckks_update_mod`` encrypts the clipped update and signs it before it leaves the node,
and ``query`` endorses the round's set of signed contributions, then decrypts their sum
for the coordinator only after verifying it (``client_node.ckks_contribution``).

Flower runs every message in a fresh process, so this module imports only Flower and
the protocol room: torch comes with the train handler, TenSEAL with the CKKS mod and
the decryption (an endorsement needs neither). ``round_timing`` records where a
process's seconds went when the node's operator asks for it.
"""

from __future__ import annotations

import logging
import socket
from typing import TYPE_CHECKING

from flwr.app import ArrayRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.app.message_type import MessageType
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod

from client_node import round_timing
from embedding_core.app_logging import configure_logging
from embedding_core.errors import FedembedError
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings, server_round_of
from federation.wire import ERROR_CODE_NODE_REFUSED, ContentKey, NodeConfigKey

if TYPE_CHECKING:
    from client_node.local_round import LocalResult

__all__ = ["app", "make_client_app"]

logger = logging.getLogger(__name__)

round_timing.mark("app_imported")


def _node_name(context: Context) -> str:
    name = context.node_config.get(NodeConfigKey.NODE_NAME.value)
    return str(name) if name else f"{socket.gethostname()}-{context.node_id}"


def _run_local_round(
    *,
    node_dir: str,
    node_name: str,
    arrays: ArrayRecord,
    settings: RoundSettings,
    server_round: int,
    node_privacy: NodePrivacy,
) -> LocalResult:
    """``run_local_round`` on the message's weights; torch is imported here, not before."""
    from client_node.local_round import run_local_round

    return run_local_round(
        node_dir=node_dir,
        node_name=node_name,
        global_state=arrays.to_torch_state_dict(),
        settings=settings,
        server_round=server_round,
        node_privacy=node_privacy,
    )


def train(msg: Message, context: Context) -> Message:
    """One local DP-SGD round on the node's private interactions."""
    configure_logging()
    node_name = _node_name(context)
    round_timing.set_label("kind", "train")
    round_timing.set_label("node", node_name)
    try:
        data_dir = context.node_config.get(NodeConfigKey.DATA_DIR.value)
        if not data_dir:
            raise FedembedError(
                f"node {node_name} has no data folder",
                expected="--node-config \"data-dir='/path/to/node'\"",
                fix="restart the SuperNode with data-dir in --node-config",
            )
        config = dict(msg.content.config_records[ContentKey.CONFIG.value])
        settings = RoundSettings.from_record(config)
        server_round = server_round_of(config, settings)
        arrays = msg.content.array_records[ContentKey.ARRAYS.value]
        node_privacy = NodePrivacy.from_node_config(context.node_config)
        result = _run_local_round(
            node_dir=str(data_dir),
            node_name=node_name,
            arrays=arrays,
            settings=settings,
            server_round=server_round,
            node_privacy=node_privacy,
        )
    except FedembedError as exc:
        logger.warning("train: node=%s refused: %s", node_name, exc)
        return Message(
            Error(code=ERROR_CODE_NODE_REFUSED, reason=f"{node_name}: {exc}"), reply_to=msg
        )
    content = RecordDict(
        {
            ContentKey.ARRAYS.value: ArrayRecord(result.state),
            ContentKey.METRICS.value: MetricRecord(result.metrics),  # type: ignore[arg-type]
        }
    )
    return Message(content, reply_to=msg)


def query(msg: Message, context: Context) -> Message:
    """CKKS mode: endorse the round's contribution set, or decrypt a verified sum of it."""
    round_timing.set_label("node", _node_name(context))
    if ContentKey.CKKS_ENDORSE.value in msg.content.config_records:
        round_timing.set_label("kind", "endorse")
        from client_node.ckks_contribution import endorse_contribution_set

        return endorse_contribution_set(msg, context)
    round_timing.set_label("kind", "decrypt")
    from client_node.ckks_mod import ckks_decrypt_sum

    return ckks_decrypt_sum(msg, context)


def _kmeans_train(msg: Message, context: Context) -> Message:
    """``train.kmeans``: one DP federated k-means step (``client_node.kmeans_round``)."""
    round_timing.set_label("kind", "kmeans")
    from client_node.kmeans_round import kmeans_train

    return kmeans_train(msg, context)


def _classifier_train(msg: Message, context: Context) -> Message:
    """``train.classifier``: one DP classifier-head step (``client_node.classifier_round``)."""
    round_timing.set_label("kind", "classifier")
    from client_node.classifier_round import classifier_train

    return classifier_train(msg, context)


def _timing_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Mark when the message enters and leaves the ClientApp (``round_timing``)."""
    round_timing.mark("call_start")
    reply = call_next(msg, context)
    round_timing.mark("call_end")
    return reply


def _ckks_update(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """``ckks_mod.ckks_update_mod``, imported (TenSEAL, torch) for train messages only."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)
    from client_node.ckks_mod import ckks_update_mod

    return ckks_update_mod(msg, context, call_next)


def _secaggplus_router(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """``secaggplus_client.secaggplus_router_mod``, imported (torch) for train messages only."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)
    from client_node.secaggplus_client import secaggplus_router_mod

    return secaggplus_router_mod(msg, context, call_next)


def make_client_app(*, mods: list[Mod] | None = None) -> ClientApp:
    """A ClientApp with the node handlers; ``mods`` run outside the CKKS mod."""
    client = ClientApp(mods=[_timing_mod, *(mods or []), _ckks_update])
    client.train()(train)
    client.train("kmeans")(_kmeans_train)
    client.train("classifier")(_classifier_train)
    client.query()(query)
    return client


app = make_client_app(mods=[_secaggplus_router])
