"""Run the same ServerApp/ClientApp on Flower's simulation engine (many virtual nodes).

Virtual node ``k`` (Flower's ``partition-id``) gets the member folder
``<partition_root>/node-<k>`` and, for CKKS, the kit ``<kit_root>/nodes/node-<k>``,
injected by a client mod into the node config exactly where a real SuperNode's
``--node-config`` would put them; nothing else differs from the deployment engine.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from flwr.app import Context, Message
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable, Mod
from flwr.serverapp import Grid, ServerApp
from flwr.simulation import run_simulation

from client_node.client_app import make_client_app
from client_node.secaggplus_client import make_secaggplus_client_app
from coordinator.authorised_grid import unverifiable_enrolment
from coordinator.prompt_grid import PromptGrid
from coordinator.publication import HISTORY_FILE
from coordinator.secaggplus_app import make_secaggplus_server_app
from coordinator.server_app import run_federation
from fedembed.simulation_dispatch import prompt_dispatch
from federation.node_privacy import NodePrivacy
from federation.run_config import FederationConfig
from federation.secaggplus_params import SecAggPlusParams
from federation.wire import AggregationMode, NodeConfigKey

__all__ = [
    "partition_mod",
    "run_simulated_federation",
    "run_simulated_secaggplus_federation",
    "simulate",
]

logger = logging.getLogger(__name__)

PARTITION_ID = "partition-id"
SIMULATION_POLL_SECONDS = 0.02


def partition_mod(
    partition_root: Path, *, node_privacy: NodePrivacy, kit_root: Path | None = None
) -> Mod:
    """Client mod mapping a virtual node's partition id to its member folder and kit.

    Every virtual node gets ``node_privacy`` in its node config, as a real SuperNode's
    operator sets it with ``--node-config``.
    """

    def mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
        pid = int(str(context.node_config.get(PARTITION_ID, 0)))
        name = f"node-{pid}"
        context.node_config[NodeConfigKey.DATA_DIR.value] = str(partition_root / name)
        context.node_config[NodeConfigKey.NODE_NAME.value] = name
        if kit_root is not None:
            context.node_config[NodeConfigKey.KIT_DIR.value] = str(kit_root / "nodes" / name)
        context.node_config.update(node_privacy.to_node_config())
        return call_next(msg, context)

    return mod


def run_simulated_federation(
    config: FederationConfig,
    *,
    partition_root: Path,
    num_nodes: int,
    kit_root: Path | None = None,
    node_privacy: NodePrivacy,
    num_cpus: int = 2,
) -> dict[str, Any]:
    """Run ``config`` over ``num_nodes`` virtual nodes; returns the run summary."""
    if config.aggregation == AggregationMode.SECAGGPLUS:
        return run_simulated_secaggplus_federation(
            config,
            partition_root=partition_root,
            num_nodes=num_nodes,
            node_privacy=node_privacy,
            num_cpus=num_cpus,
        )
    server = ServerApp()

    @server.main()
    def _main(grid: Grid, context: Context) -> None:
        # As the deployment's ServerApp (coordinator.server_app.main), replies are looked
        # for promptly; here a look is an in-memory call, so every 20 ms at most.
        run_federation(PromptGrid(grid, poll_seconds=SIMULATION_POLL_SECONDS), config)

    client = make_client_app(
        mods=[partition_mod(partition_root, node_privacy=node_privacy, kit_root=kit_root)]
    )
    logger.info("simulation: nodes=%d rounds=%d", num_nodes, config.num_server_rounds)
    return simulate(server, client, num_nodes=num_nodes, num_cpus=num_cpus, out_dir=config.out_dir)


def simulate(
    server: ServerApp, client: ClientApp, *, num_nodes: int, num_cpus: int, out_dir: str
) -> dict[str, Any]:
    """Run ``server``/``client`` on the simulation engine; returns the run's history.json.

    Messages reach the virtual nodes within milliseconds (:func:`~fedembed.
    simulation_dispatch.prompt_dispatch`), not on Flower's 0.1 s tick.
    """
    prompt_dispatch()
    run_simulation(
        server_app=server,
        client_app=client,
        num_supernodes=num_nodes,
        backend_config={
            "client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": num_cpus, "include_dashboard": False},
        },
    )
    history = Path(out_dir) / HISTORY_FILE
    if not history.is_file():
        raise RuntimeError(f"simulation ended without writing {history}; see the log above")
    summary: dict[str, Any] = json.loads(history.read_text())
    return summary


def run_simulated_secaggplus_federation(
    config: FederationConfig,
    *,
    partition_root: Path,
    num_nodes: int,
    node_privacy: NodePrivacy,
    num_cpus: int = 2,
    params: SecAggPlusParams | None = None,
) -> dict[str, Any]:
    """As :func:`run_simulated_federation`, with SecAgg+ on both sides.

    Raises:
        FedembedError: ``config`` names a coordinator kit, whose authorised node list
            cannot be checked on the simulation engine (its nodes register no keys).
    """
    if config.coordinator_kit:
        raise unverifiable_enrolment("coordinator-kit is set for a simulated SecAgg+ run")
    server = make_secaggplus_server_app(config, params=params)
    client = make_secaggplus_client_app(
        mods=[partition_mod(partition_root, node_privacy=node_privacy)]
    )
    logger.info("simulation: secaggplus nodes=%d rounds=%d", num_nodes, config.num_server_rounds)
    return simulate(server, client, num_nodes=num_nodes, num_cpus=num_cpus, out_dir=config.out_dir)
