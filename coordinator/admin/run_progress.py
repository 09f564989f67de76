"""A federation run's state and progress, as the admin API shows them.

:func:`run_view` reads a run folder: ``run.json`` (what the admin API recorded) and what
the ServerApp writes there each round (the federation ledger, ``central_metrics.json``)
and at the end (``history.json``): rounds done of the total, each round's released flag,
the nodes that answered (by kit name), the refusals with their reasons, the central
metrics, and the final state with the reason of a failure. :func:`state_of` names
Flower's run status in the API's words.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coordinator.run_folder import (
    CENTRAL_METRICS_FILE,
    HISTORY_FILE,
    LEDGER_FILE,
    STATUS_FAILED,
)
from deployment.flower_runs import FlowerRun

__all__ = ["RunState", "read_json", "run_view", "state_of"]


class RunState:
    """A run's states in ``run.json`` and the API (Flower's, with its outcome named)."""

    PENDING = "pending"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"
    FINAL = frozenset({SUCCEEDED, FAILED, STOPPED})


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from ``path``, or None (missing, unreadable, not an object)."""
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return loaded if isinstance(loaded, dict) else None


def state_of(flower: FlowerRun, history: Mapping[str, Any] | None) -> str:
    """The API state of a run Flower reports as ``flower``."""
    if not flower.finished:
        return flower.status if flower.status in {"pending", "starting"} else RunState.RUNNING
    if flower.sub_status == "stopped":
        return RunState.STOPPED
    if flower.sub_status == "failed" or (history or {}).get("status") == STATUS_FAILED:
        return RunState.FAILED
    return RunState.SUCCEEDED


def _statistics_rounds(history: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The rounds of a k-means or classifier run (``history.json``, rewritten each round).

    Its nodes answer anonymously (the secure sum admits signed contributions, counted),
    so ``answered`` is empty and ``nodes`` counts them; refusals carry the node's reason.
    """
    refusals: list[Mapping[str, Any]] = list(history.get("refusals", []))
    return [
        {
            "round": entry.get("round"),
            "released": bool(entry.get("released")),
            "answered": [],
            "nodes": int(entry.get("nodes", 0)),
            "refusals": [
                {"node": str(r.get("node")), "reason": str(r.get("reason"))}
                for r in refusals
                if r.get("round") == entry.get("round")
            ],
            "metrics": {},
        }
        for entry in history.get("rounds", [])
        if isinstance(entry, Mapping)
    ]


def run_view(record: Mapping[str, Any], folder: Path) -> dict[str, Any]:
    """The API's view of a run: its record and its progress from the run folder."""
    config = record.get("run_config", {})
    total = int(record.get("rounds_total", 0))
    ledger = read_json(folder / LEDGER_FILE) or {}
    central = (read_json(folder / CENTRAL_METRICS_FILE) or {}).get("rounds", {})
    history = read_json(folder / HISTORY_FILE)
    rounds: list[dict[str, Any]] = []
    if not ledger and history is not None and "task" in history:
        rounds = _statistics_rounds(history)
    for entry in ledger.get("rounds", []):
        nodes: Mapping[str, Mapping[str, Any]] = entry.get("nodes", {})
        rounds.append(
            {
                "round": entry.get("round"),
                "released": bool(entry.get("released")),
                "answered": sorted(n for n, r in nodes.items() if "error" not in r),
                "refusals": [
                    {"node": n, "reason": str(r["error"])}
                    for n, r in sorted(nodes.items())
                    if "error" in r
                ],
                "metrics": central.get(str(entry.get("round")), {}),
            }
        )
    view: dict[str, Any] = {
        "name": record["name"],
        "state": record.get("state"),
        "flower_run_id": record.get("flower_run_id"),
        "flower_status": record.get("flower_status"),
        "created": record.get("created"),
        "submitted": record.get("submitted"),
        "finished": record.get("finished"),
        "run_config": config,
        "progress": {
            "rounds_total": total,
            "rounds_done": len(rounds),
            "initial_metrics": central.get("0", {}),
            "rounds": rounds,
        },
    }
    if record.get("error"):
        view["reason"] = record["error"]
    if history is not None:
        if "task" in history:  # a k-means or classifier run: its task and published file
            view["task"] = history["task"]
            if history.get("published"):
                view["published"] = history["published"]
        if history.get("status") == STATUS_FAILED:
            view["reason"] = history.get("reason")
        view["per_node_epsilon"] = history.get("per_node_epsilon", {})
        if "final" in history:
            view["final_metrics"] = history["final"]
    elif record.get("state") == RunState.FAILED and record.get("flower_details"):
        view.setdefault("reason", record["flower_details"])
    return view
