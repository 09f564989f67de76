"""Process helpers for deployments.

Process helpers for deployments: start Flower's SuperLink and SuperNodes from checked
kits, register node keys, run ``flwr run``; federation runs through Flower's Control
API (``flower_runs``: submit, list, status, stop, logs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from deployment.flower_nodes import (
        SuperLinkUnreachableError,
        SuperNodeInfo,
        SuperNodeKeyInUseError,
        SuperNodeNotFoundError,
        list_supernodes,
        register_node_key,
        unregister_supernode,
    )
    from deployment.flower_processes import (
        ManagedProcess,
        flwr_command,
        flwr_run,
        free_port,
        register_supernode,
        start_superlink,
        start_supernode,
        wait_for_port,
        write_flwr_connection,
    )
    from deployment.flower_runs import (
        FlowerRun,
        FlowerRunError,
        list_runs,
        run_logs,
        run_status,
        stop_run,
        submit_run,
    )

_SUBMODULE: dict[str, str] = {
    "SuperLinkUnreachableError": "flower_nodes",
    "SuperNodeInfo": "flower_nodes",
    "SuperNodeKeyInUseError": "flower_nodes",
    "SuperNodeNotFoundError": "flower_nodes",
    "list_supernodes": "flower_nodes",
    "register_node_key": "flower_nodes",
    "unregister_supernode": "flower_nodes",
    "FlowerRun": "flower_runs",
    "FlowerRunError": "flower_runs",
    "list_runs": "flower_runs",
    "run_logs": "flower_runs",
    "run_status": "flower_runs",
    "stop_run": "flower_runs",
    "submit_run": "flower_runs",
    "ManagedProcess": "flower_processes",
    "flwr_command": "flower_processes",
    "flwr_run": "flower_processes",
    "free_port": "flower_processes",
    "register_supernode": "flower_processes",
    "start_superlink": "flower_processes",
    "start_supernode": "flower_processes",
    "wait_for_port": "flower_processes",
    "write_flwr_connection": "flower_processes",
}

__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

__all__ = [
    "FlowerRun",
    "FlowerRunError",
    "ManagedProcess",
    "SuperLinkUnreachableError",
    "SuperNodeInfo",
    "SuperNodeKeyInUseError",
    "SuperNodeNotFoundError",
    "flwr_command",
    "flwr_run",
    "free_port",
    "list_runs",
    "list_supernodes",
    "register_node_key",
    "register_supernode",
    "run_logs",
    "run_status",
    "start_superlink",
    "start_supernode",
    "stop_run",
    "submit_run",
    "unregister_supernode",
    "wait_for_port",
    "write_flwr_connection",
]
