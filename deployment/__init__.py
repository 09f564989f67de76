"""Process helpers for deployments.

Process helpers for deployments: start Flower's SuperLink and SuperNodes from checked
kits, register node keys, run ``flwr run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
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

_SUBMODULE: dict[str, str] = {
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
    "ManagedProcess",
    "flwr_command",
    "flwr_run",
    "free_port",
    "register_supernode",
    "start_superlink",
    "start_supernode",
    "wait_for_port",
    "write_flwr_connection",
]
