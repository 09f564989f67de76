"""``/v1/budgets``: each member's epsilon per run and in all, and the privacy planner.

Any role reads the budgets and asks for a plan (``POST /v1/budgets/plan`` is a pure
computation: ``fedembed policy plan`` on the consortium's policy, with any of its numbers
replaced; nothing is written).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field

from coordinator.admin.budgets import MAX_PLAN_EPSILON, MAX_PLAN_SHARES, NEAR_FRACTION, Budgets
from coordinator.admin.deps import BudgetsDep, ReaderDep
from coordinator.admin.settings import AdminSettings
from index_client.names import NAME_PATTERN

__all__ = ["BudgetList", "PlanRequest", "install", "router"]

router = APIRouter(prefix="/v1/budgets", tags=["budgets"])

MemberName = Annotated[
    str, Path(pattern=NAME_PATTERN, description="The member's kit name (or Flower's number).")
]


class BudgetList(BaseModel):
    """Every member's spending against the policy."""

    policy: str = Field(description="The policy file.")
    max_epsilon_per_node: float
    near_fraction: float = Field(description="Members from this share of the budget are near.")
    members: list[dict[str, Any]]


class PlanRequest(BaseModel):
    """The planner's inputs; a number left out is the policy's."""

    model_config = ConfigDict(extra="forbid")

    noise_shares: int = Field(
        default=0, ge=0, le=MAX_PLAN_SHARES, strict=True, description="The run's dp-noise-shares."
    )
    max_epsilon_per_node: float | None = Field(
        default=None, gt=0, le=MAX_PLAN_EPSILON, allow_inf_nan=False
    )
    target_delta: float | None = Field(default=None, gt=0, lt=1, allow_inf_nan=False)
    max_mia_auc: float | None = Field(default=None, gt=0.5, le=1, allow_inf_nan=False)


def install(app: FastAPI, settings: AdminSettings) -> None:
    """Read the consortium's policy (the default policy when none is set)."""
    app.state.budgets = Budgets(settings)


@router.get("", response_model=BudgetList)
def list_budgets(caller: ReaderDep, budgets: BudgetsDep) -> BudgetList:
    """Every member, by name: epsilon per run and in all, and over, near or ok."""
    return BudgetList(
        policy=str(budgets.policy_path),
        max_epsilon_per_node=budgets.policy.privacy.max_epsilon_per_node,
        near_fraction=NEAR_FRACTION,
        members=[m.to_dict() for m in budgets.members()],
    )


@router.post("/plan")
def plan(body: PlanRequest, caller: ReaderDep, budgets: BudgetsDep) -> dict[str, Any]:
    """The per-node target epsilon the policy allows (as `fedembed policy plan` prints it)."""
    return budgets.plan(
        noise_shares=body.noise_shares,
        max_epsilon_per_node=body.max_epsilon_per_node,
        target_delta=body.target_delta,
        max_mia_auc=body.max_mia_auc,
    )


@router.get("/{member}")
def member_budget(member: MemberName, caller: ReaderDep, budgets: BudgetsDep) -> dict[str, Any]:
    """One member's spending."""
    return budgets.member(member).to_dict()
