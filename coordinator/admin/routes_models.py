"""``/v1/models``: the model registry (versions, promotion to the query gateway, rollback).

Any role reads versions and their manifests; an operator (or admin) registers a run's
adapter as a new version, promotes a version to the gateway (which serves it without a
restart) and rolls back to the version live before. Every change is recorded in the
audit trail before the answer is sent.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field

from coordinator.admin.deps import ModelsDep, OperatorDep, ReaderDep, TrailDep
from coordinator.admin.model_registry import RUN_NAME_PATTERN, ModelRegistry
from coordinator.admin.settings import AdminSettings

__all__ = ["ModelList", "Promotion", "RegisterRequest", "install", "router"]

router = APIRouter(prefix="/v1/models", tags=["models"])

Version = Annotated[int, Path(ge=1, le=1_000_000, description="The model version number.")]


class RegisterRequest(BaseModel):
    """The run whose published adapter becomes a new version."""

    model_config = ConfigDict(extra="forbid")

    run: str = Field(pattern=RUN_NAME_PATTERN, description="The run's name (GET /v1/runs).")


class ModelList(BaseModel):
    """Every version (oldest first) and the live one."""

    live: int | None
    versions: list[dict[str, Any]]


class Promotion(BaseModel):
    """The version now live, its manifest and what the gateway reported."""

    live: int
    model: dict[str, Any]
    gateway: dict[str, Any]


def install(app: FastAPI, settings: AdminSettings) -> None:
    """Open the registry in the home's models folder."""
    app.state.models = ModelRegistry(settings)


@router.get("", response_model=ModelList)
def list_models(caller: ReaderDep, models: ModelsDep) -> ModelList:
    """Every version with its manifest (run, epsilon per observer, base model, SHA-256)."""
    return ModelList(live=models.live(), versions=models.list())


@router.post("/register", status_code=201)
def register_model(
    body: RegisterRequest, caller: OperatorDep, models: ModelsDep, trail: TrailDep
) -> dict[str, Any]:
    """Copy a succeeded run's adapter into a new, immutable version."""
    manifest = models.register(body.run)
    trail.record(
        caller,
        "model.register",
        str(manifest["version"]),
        detail={"run": body.run, "weights_sha256": manifest["files"]["adapter.safetensors"]},
    )
    return manifest


@router.post("/rollback", response_model=Promotion)
def rollback_model(caller: OperatorDep, models: ModelsDep, trail: TrailDep) -> Promotion:
    """Promote the version that was live before the current one."""
    before = models.live()
    answer = models.rollback()
    trail.record(caller, "model.rollback", str(answer["live"]), detail={"from_version": before})
    return Promotion(**answer)


@router.get("/{version}")
def get_model(version: Version, caller: ReaderDep, models: ModelsDep) -> dict[str, Any]:
    """One version's manifest, with whether it is live and whether its files are intact."""
    return models.get(version)


@router.post("/{version}/promote", response_model=Promotion)
def promote_model(
    version: Version, caller: OperatorDep, models: ModelsDep, trail: TrailDep
) -> Promotion:
    """Send the version to the query gateway; live once the gateway accepted it."""
    before = models.live()
    answer = models.promote(version)
    trail.record(caller, "model.promote", str(version), detail={"from_version": before})
    return Promotion(**answer)
