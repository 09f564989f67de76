"""The member node's ClientApp for SecAgg+ secure aggregation (Bell et al., CCS 2020).

Flower 1.42 offers SecAgg+ only in the legacy API, so this node side is a legacy
``NumPyClient`` wrapped by ``flwr.client.mod.secaggplus_mod``. ``fit`` runs one local
DP-SGD round (``local_round.run_local_round``: the node's privacy ledger is charged
before anything leaves the node) and returns the clipped *update* ``new - global``
with its public weight (1, or under ``weighting = "declared-counts"`` the record count
its operator declared public); ``secaggplus_mod`` scales it by that weight, quantizes
it, adds pairwise and private masks and uploads only the masked integer vector, so the
coordinator learns the weighted sum of all surviving nodes' updates and nothing about
any single one.

Why the update and not the new weights: SecAgg+ clips every value to
``[-clipping_range, clipping_range]`` before quantizing it to ``quantization_range``
levels. The update is bounded by the node-level clip norm (``update-clip-norm``),
whatever the size of the global model, so the coordinator can pick a clipping range
that never clips and a quantization step that is tiny relative to the update (see
``coordinator.secaggplus_app.quantization_tolerance``).

Plaintext metadata the coordinator does see per node: the weight (1, or the declared
public count) and the privacy bookkeeping (epsilon, noise multipliers), as in the other
modes; no loss, norm, timing or undeclared count.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping

import numpy as np
import torch
from flwr.app import Context, Message
from flwr.app.message_type import MessageType
from flwr.client import Client, NumPyClient
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.common import NDArrays, Scalar
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from client_node.local_round import run_local_round
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.app_logging import configure_logging
from embedding_core.errors import FedembedError
from federation.node_privacy import NodePrivacy
from federation.round_settings import RoundSettings, server_round_of
from federation.wire import MetricKey, NodeConfigKey, WeightingMode

__all__ = [
    "SecAggPlusNode",
    "adapter_names",
    "app",
    "make_secaggplus_client_app",
    "secaggplus_router_mod",
]

logger = logging.getLogger(__name__)


def adapter_names(kind: str, rank: int, in_dim: int) -> list[str]:
    """The state-dict names of a query-side adapter, in the order legacy Parameters use."""
    adapter = Adapter(in_dim, kind=kind, rank=rank or None, side=AdapterSide.QUERY)
    return list(adapter.state_dict().keys())


class SecAggPlusNode(NumPyClient):
    """One member node: local DP-SGD round in ``fit``; the update goes out via SecAgg+."""

    def __init__(self, node_config: Mapping[str, Scalar], node_id: int) -> None:
        self.node_config = node_config
        self.node_id = node_id

    @property
    def node_name(self) -> str:
        """The operator-given name, else host and Flower node id."""
        name = self.node_config.get(NodeConfigKey.NODE_NAME.value)
        return str(name) if name else f"{socket.gethostname()}-{self.node_id}"

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        """Never used: the coordinator supplies the initial adapter."""
        raise FedembedError(
            "a member node does not supply initial weights",
            fix="the coordinator's strategy sets initial_parameters",
        )

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        """Train one round; return ``(new - global, weight, privacy bookkeeping)``.

        Raises:
            FedembedError: No data folder, or the round would exceed the node's privacy
                budget (``BudgetExceededError``); the message names the node. SecAgg+
                then treats the node as dropped and unmasks the others' sum without it.
        """
        configure_logging()
        node_name = self.node_name
        data_dir = self.node_config.get(NodeConfigKey.DATA_DIR.value)
        if not data_dir:
            raise FedembedError(
                f"node {node_name} has no data folder",
                expected="--node-config \"data-dir='/path/to/node'\"",
                fix="restart the SuperNode with data-dir in --node-config",
            )
        settings = RoundSettings.from_record(config)
        server_round = server_round_of(config, settings)
        in_dim = int(parameters[0].shape[-1])
        names = adapter_names(settings.adapter_kind, settings.adapter_rank, in_dim)
        if len(names) != len(parameters):
            raise FedembedError(
                f"node {node_name}: the global model has {len(parameters)} arrays, "
                f"a {settings.adapter_kind} adapter has {len(names)}",
                fix="use the same adapter-kind and adapter-rank on both sides",
            )
        global_state = {
            name: torch.from_numpy(np.array(array, dtype=np.float32, copy=True))
            for name, array in zip(names, parameters, strict=True)
        }
        try:
            result = run_local_round(
                node_dir=str(data_dir),
                node_name=node_name,
                global_state=global_state,
                settings=settings,
                server_round=server_round,
                node_privacy=NodePrivacy.from_node_config(self.node_config),
            )
        except FedembedError as exc:
            logger.warning("train: node=%s refused: %s", node_name, exc)
            raise FedembedError(f"{node_name}: {exc}") from exc
        update = [
            (result.state[name].detach().double() - global_state[name].double())
            .numpy()
            .astype(np.float32)
            for name in names
        ]
        # The FedAvg weight travels in plaintext: 1, or the count the operator declared
        # public (run_local_round refused a declared-counts round otherwise).
        weight = 1
        if settings.weighting == WeightingMode.DECLARED_COUNTS:
            weight = int(result.metrics[MetricKey.NUM_EXAMPLES.value])
        metrics: dict[str, Scalar] = {k: float(v) for k, v in result.metrics.items()}
        return update, weight, metrics


def make_secaggplus_client_app(*, mods: list[Mod] | None = None) -> ClientApp:
    """A legacy ClientApp for SecAgg+ rounds; ``mods`` run outside ``secaggplus_mod``."""

    def client_fn(context: Context) -> Client:
        return SecAggPlusNode(context.node_config, context.node_id).to_client()

    return ClientApp(client_fn=client_fn, mods=[*(mods or []), secaggplus_mod])


app = make_secaggplus_client_app()


def secaggplus_router_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Client mod: hand SecAgg+ protocol messages to :data:`app`, pass the rest on.

    Lets one ClientApp (``client_app.make_client_app(mods=[secaggplus_router_mod])``)
    serve the Message-API modes (plaintext, CKKS) and SecAgg+ rounds, as ``flwr run``
    needs a single ``clientapp`` component. SecAgg+ messages are ``train`` messages
    carrying the ``secaggplus_configs`` record.
    """
    if (
        msg.metadata.message_type == MessageType.TRAIN
        and msg.has_content()
        and RECORD_KEY_CONFIGS in msg.content.config_records
    ):
        return app(msg, context)
    return call_next(msg, context)
