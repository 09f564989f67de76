"""A whole consortium on 127.0.0.1: one TLS SuperLink, authenticated SuperNodes, ``flwr run``.

``fedembed demo`` uses it to run real federations on Flower's deployment engine on one
machine; each member node is a separate SuperNode process with its own data folder.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coordinator.publication import HISTORY_FILE
from deployment.flower_processes import (
    ManagedProcess,
    flwr_run,
    register_supernode,
    start_superlink,
    start_supernode,
    write_flwr_connection,
)
from embedding_core.errors import FedembedError
from fedembed.round_progress import watch_rounds
from federation.node_privacy import NodePrivacy
from kits.loader import load_coordinator_kit, load_node_kit

__all__ = ["CONNECTION", "LoopbackConsortium"]

logger = logging.getLogger(__name__)

CONNECTION = "fedembed-loopback"
PROJECT_DIR = Path(__file__).resolve().parents[1]


class LoopbackConsortium:
    """Start/stop a SuperLink and member SuperNodes; run federations on them.

    Args:
        kits: Folder written by ``provision`` (``coordinator/``, ``nodes/<id>/``).
        work: Folder for logs, Flower state and ``FLWR_HOME``.
        env: Extra environment for the Flower processes (e.g. cache and data dirs).
    """

    def __init__(self, *, kits: Path, work: Path, env: Mapping[str, str] | None = None) -> None:
        self.kits = kits
        self.work = work
        self.flwr_home = work / "flwr-home"
        self.env = {"FLWR_HOME": str(self.flwr_home), **(env or {})}
        self.superlink: ManagedProcess | None = None
        self.nodes: dict[str, ManagedProcess] = {}

    def start(self, node_ids: list[str]) -> None:
        """Start the SuperLink and register the nodes' public keys."""
        coordinator_kit = load_coordinator_kit(self.kits / "coordinator")
        self.superlink = start_superlink(
            coordinator_kit=coordinator_kit,
            state_dir=self.work / "superlink",
            env=self.env,
        )
        write_flwr_connection(
            self.flwr_home,
            CONNECTION,
            address=self.superlink.extra["address"],
            ca_cert=coordinator_kit.ca_cert_path,
        )
        for node_id in node_ids:
            register_supernode(
                public_key=load_node_kit(self.kits / "nodes" / node_id).auth_pub_path,
                name=node_id,
                connection=CONNECTION,
                flwr_home=self.flwr_home,
            )

    def start_node(
        self, node_id: str, *, data_dir: Path, node_privacy: NodePrivacy
    ) -> ManagedProcess:
        """Start (or restart) one member's SuperNode on ``data_dir``."""
        if self.superlink is None:
            raise FedembedError("start the consortium before its nodes")
        old = self.nodes.pop(node_id, None)
        if old is not None:
            old.stop()
        node = start_supernode(
            node_kit=load_node_kit(self.kits / "nodes" / node_id),
            data_dir=data_dir,
            superlink_address=self.superlink.extra["address"],
            node_name=node_id,
            log_dir=self.work / "logs",
            node_privacy=node_privacy,
            env=self.env,
        )
        self.nodes[node_id] = node
        return node

    def stop_nodes(self) -> None:
        """Stop every SuperNode."""
        for node in self.nodes.values():
            node.stop()
        self.nodes.clear()

    def stop(self) -> None:
        """Stop nodes and SuperLink."""
        self.stop_nodes()
        if self.superlink is not None:
            self.superlink.stop()
            self.superlink = None

    def run(
        self, run_config: Mapping[str, Any], *, out_dir: Path, timeout: float = 3600
    ) -> dict[str, Any]:
        """``flwr run`` the project with ``run_config``; returns the run's summary.

        Every run gets its own ``run-tag`` (the out folder's name and a random suffix)
        unless ``run_config`` names one. The summary's ``status`` is ``"failed"`` when no
        round was aggregated (nothing was published; ``reason`` and ``refusals`` say why).
        """
        tag = re.sub(r"[^A-Za-z0-9._-]", "-", out_dir.name).strip("-._") or "run"
        config = {
            "coordinator-kit": str(self.kits / "coordinator"),
            "run-tag": f"{tag}-{secrets.token_hex(4)}",
            **run_config,
            "out-dir": str(out_dir),
        }
        rounds = int(config.get("num-server-rounds", 0)) or None
        with watch_rounds(out_dir, total=rounds or 0, what=f"federation {out_dir.name}"):
            result = flwr_run(
                project_dir=PROJECT_DIR,
                connection=CONNECTION,
                flwr_home=self.flwr_home,
                run_config=config,
                timeout=timeout,
                log_path=out_dir / "flwr-run.log",
            )
        history = out_dir / HISTORY_FILE
        if result.returncode != 0 or not history.is_file():
            raise FedembedError(
                f"federation run failed (flwr exit {result.returncode}); "
                f"see {out_dir / 'flwr-run.log'} and {self.work / 'logs'}"
            )
        summary: dict[str, Any] = json.loads(history.read_text())
        return summary

    def __enter__(self) -> LoopbackConsortium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
