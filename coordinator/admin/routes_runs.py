"""``/v1/runs``: start, list, follow, stop federation runs and read their logs.

Starting and stopping need the operator role (or admin) and are recorded in the audit
trail before the answer; reading needs any role. A run is submitted with Flower's own
``flwr run`` (:class:`coordinator.admin.runs.RunManager`) and answered with 202: it runs
on the SuperLink; ``GET /v1/runs/{name}`` follows its rounds.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from coordinator.admin.deps import OperatorDep, ReaderDep, RunsDep, TrailDep
from coordinator.admin.errors import AdminError
from coordinator.admin.run_request import MANAGED_KEYS, RunRequest
from coordinator.admin.runs import RunManager
from coordinator.admin.settings import AdminSettings
from index_client.names import NAME_PATTERN

__all__ = [
    "RoundProgress",
    "RunList",
    "RunOut",
    "RunProgress",
    "RunRefusal",
    "RunStart",
    "install",
    "router",
]

router = APIRouter(prefix="/v1/runs", tags=["runs"])

RunName = Annotated[str, Path(pattern=NAME_PATTERN, description="The run's name.")]
ConfigValue = StrictBool | StrictInt | StrictFloat | str


class RunStart(BaseModel):
    """A federation run to start."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description="The run's name (its folder runs/<name>/); default: generated.",
    )
    run_config: dict[str, ConfigValue] = Field(
        default_factory=dict,
        description="Keys of [tool.flwr.app.config] (e.g. num-server-rounds, target-epsilon, "
        "eval-dataset: a dataset folder or 'none'); not " + ", ".join(MANAGED_KEYS) + ".",
    )


class RunRefusal(BaseModel):
    """A node that did not contribute to a round, and why."""

    node: str
    reason: str


class RoundProgress(BaseModel):
    """One finished round."""

    round: int
    released: bool = Field(description="Whether the round's aggregate was applied.")
    answered: list[str] = Field(description="Nodes (kit names) that answered.")
    nodes: int | None = Field(
        default=None,
        description="How many nodes' contributions the round summed (k-means and "
        "classifier runs, whose contributions are counted, not named).",
    )
    refusals: list[RunRefusal]
    metrics: dict[str, float] = Field(description="Central metrics after the round.")


class RunProgress(BaseModel):
    """Rounds done of the total, each with its central metrics."""

    rounds_total: int
    rounds_done: int
    initial_metrics: dict[str, float]
    rounds: list[RoundProgress]


class RunOut(BaseModel):
    """A run: its state (pending, starting, running, succeeded, failed, stopped)."""

    name: str
    state: str
    flower_run_id: int | None
    flower_status: str | None
    created: str | None
    submitted: str | None
    finished: str | None
    run_config: dict[str, Any]
    progress: RunProgress
    reason: str | None = Field(default=None, description="Why the run failed.")
    per_node_epsilon: dict[str, float] | None = None
    final_metrics: dict[str, float] | None = None
    task: str | None = Field(
        default=None, description="The run's task when it is not training (kmeans, classifier)."
    )
    published: str | None = Field(
        default=None,
        description="The file a k-means or classifier run published (its centroids or head).",
    )


class RunList(BaseModel):
    """Every run, newest first."""

    runs: list[RunOut]


def install(app: FastAPI, settings: AdminSettings) -> None:
    """Put the run manager on ``app.state.runs``."""
    app.state.runs = RunManager(settings)


@router.post("", status_code=202, response_model=RunOut)
def start_run(body: RunStart, caller: OperatorDep, runs: RunsDep, trail: TrailDep) -> RunOut:
    """Validate the run config and submit the run; it gets its own folder runs/<name>/."""
    try:
        view = runs.start(RunRequest(name=body.name, run_config=body.run_config))
    except AdminError as err:
        trail.record(
            caller,
            "run.start",
            body.name or "-",
            decision="refused",
            detail={"status": err.status, "keys": sorted(body.run_config)},
        )
        raise
    trail.record(
        caller,
        "run.start",
        view["name"],
        detail={"flower_run_id": view["flower_run_id"], "keys": sorted(body.run_config)},
    )
    return RunOut.model_validate(view)


@router.get("", response_model=RunList)
def list_runs(caller: ReaderDep, runs: RunsDep) -> RunList:
    """Every run with its state and progress."""
    return RunList(runs=[RunOut.model_validate(v) for v in runs.list()])


@router.get("/{name}", response_model=RunOut)
def run_status(name: RunName, caller: ReaderDep, runs: RunsDep) -> RunOut:
    """A run's state, rounds done of the total, per-round refusals and central metrics."""
    return RunOut.model_validate(runs.status(name))


@router.post("/{name}/stop", response_model=RunOut)
def stop_run(name: RunName, caller: OperatorDep, runs: RunsDep, trail: TrailDep) -> RunOut:
    """Stop a pending or running run (``flwr stop``)."""
    try:
        view = runs.stop(name)
    except AdminError as err:
        trail.record(caller, "run.stop", name, decision="refused", detail={"status": err.status})
        raise
    trail.record(caller, "run.stop", name, detail={"flower_run_id": view["flower_run_id"]})
    return RunOut.model_validate(view)


@router.get("/{name}/logs", response_class=PlainTextResponse)
def run_logs(name: RunName, caller: ReaderDep, runs: RunsDep) -> PlainTextResponse:
    """The run's log as text (the ServerApp's output through ``flwr log``)."""
    return PlainTextResponse(runs.logs(name))
