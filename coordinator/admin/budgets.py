"""Privacy budgets: each member's epsilon per run and in all, by name, against the policy.

Every run folder's ``federation_ledger.json`` (:meth:`coordinator.federation_ledger.
FederationLedger.to_dict`) lists, per round, what each node reported: the epsilon its own
ledger had spent after the round (for a fellow member, the strictest observer; the
ledger composes every run, so the last report is the member's total) and the charged
mechanism (noise multiplier, sample rate, steps). From these :class:`Budgets` gives each
member, by kit name:

- per run: the total its ledger reported at the end of the run, and what the run
  itself spent (the run's charges composed alone, at the policy's delta);
- in all: the larger of the last total it reported and every recorded charge composed
  (a member whose report is missing is not undercounted), against the policy's
  ``[privacy] max_epsilon_per_node``: ``over`` above it, ``near`` from
  :data:`NEAR_FRACTION` of it, else ``ok``.

Ledgers written before nodes were named by kit name key nodes by Flower's number; such a
member keeps that number as its name (``named`` is false). A second SuperNode under a
name (``name#<number>``) counts for that name.

:meth:`Budgets.plan` is ``fedembed policy plan`` as a function: the per-node target
epsilon whose proven membership-inference bound meets the policy.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coordinator.admin.errors import AdminInvalidError, AdminNotFoundError
from coordinator.admin.settings import AdminSettings
from coordinator.publication import LEDGER_FILE
from policies import LoadedPolicy, Policy, load_default_policy, load_policy, plan_privacy
from policies.errors import PolicyError
from privacy import PLDAccountant

__all__ = [
    "MAX_PLAN_EPSILON",
    "MAX_PLAN_SHARES",
    "NEAR_FRACTION",
    "Budgets",
    "MemberBudget",
    "RunSpend",
]

logger = logging.getLogger(__name__)

NEAR_FRACTION = 0.8
"""A member whose epsilon reaches this share of the budget is flagged ``near``."""
MAX_PLAN_EPSILON = 100.0
"""The largest budget :meth:`Budgets.plan` accepts (beyond it DP says nothing)."""
MAX_PLAN_SHARES = 10_000


@dataclass
class RunSpend:
    """One member in one run."""

    run: str
    epsilon_total: float | None = None  # the member's ledger total reported at the run's end
    run_epsilon: float | None = None  # this run's charges composed alone
    rounds: int = 0  # rounds it answered
    refusals: int = 0  # rounds it refused (or whose reply was refused)
    charges: list[tuple[float, float, int]] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "run": self.run,
            "epsilon_total": self.epsilon_total,
            "run_epsilon": self.run_epsilon,
            "rounds": self.rounds,
            "refusals": self.refusals,
        }


@dataclass
class MemberBudget:
    """One member's spending against the policy."""

    member: str
    named: bool
    epsilon: float
    max_epsilon: float
    status: str
    runs: list[RunSpend]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "member": self.member,
            "named": self.named,
            "epsilon": self.epsilon,
            "max_epsilon": self.max_epsilon,
            "remaining": max(0.0, self.max_epsilon - self.epsilon),
            "status": self.status,
            "runs": [r.to_dict() for r in self.runs],
        }


def _member_name(key: str) -> str:
    """The member a ledger key names (``name#<number>`` is a second SuperNode of ``name``)."""
    name, mark, number = key.rpartition("#")
    return name if mark and name and number.isdigit() else key


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) and number >= 0 else None


def _composed(charges: list[tuple[float, float, int]], delta: float) -> float | None:
    if not charges:
        return None
    accountant = PLDAccountant()
    for noise, rate, steps in charges:
        accountant.step(noise_multiplier=noise, sample_rate=rate, steps=steps)
    return float(accountant.get_epsilon(delta))


class Budgets:
    """Members' epsilon across the consortium's runs, against the policy.

    Args:
        settings: The admin API's settings (home, policy file: the default when unset).

    Raises:
        PolicyError: The policy file is missing or invalid.
    """

    def __init__(self, settings: AdminSettings) -> None:
        self._runs = settings.consortium.runs
        self._loaded: LoadedPolicy = (
            load_policy(settings.policy) if settings.policy is not None else load_default_policy()
        )

    @property
    def policy(self) -> Policy:
        """The consortium's policy."""
        return self._loaded.policy

    @property
    def policy_path(self) -> Path:
        """The policy file."""
        return self._loaded.path

    def _ledgers(self) -> list[tuple[str, dict[str, Any]]]:
        """Every run's ledger, oldest first (by the ledger file's time, then name)."""
        if not self._runs.is_dir():
            return []
        found: list[tuple[float, str, dict[str, Any]]] = []
        for folder in self._runs.iterdir():
            path = folder / LEDGER_FILE
            if not path.is_file():
                continue
            try:
                ledger = json.loads(path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                logger.warning("budgets: run %s: unreadable %s, skipped", folder.name, LEDGER_FILE)
                continue
            if isinstance(ledger, dict):
                found.append((path.stat().st_mtime, folder.name, ledger))
        return [(run, ledger) for _, run, ledger in sorted(found, key=lambda f: f[:2])]

    def members(self) -> list[MemberBudget]:
        """Every member that took part in a run, by name, with its spending."""
        delta = self.policy.privacy.target_delta
        spends: dict[str, dict[str, RunSpend]] = {}
        numbered: set[str] = set()
        for run, ledger in self._ledgers():
            for entry in ledger.get("rounds") or []:
                for key, report in (entry.get("nodes") or {}).items():
                    if not isinstance(report, dict):
                        continue
                    name = _member_name(str(key))
                    if name.isdigit():
                        numbered.add(name)
                    spend = spends.setdefault(name, {}).setdefault(run, RunSpend(run))
                    self._add(spend, report)
        members = []
        for name, runs in sorted(spends.items()):
            for spend in runs.values():
                spend.run_epsilon = _composed(spend.charges, delta)
            members.append(self._budget(name, list(runs.values()), named=name not in numbered))
        return members

    @staticmethod
    def _add(spend: RunSpend, report: dict[str, Any]) -> None:
        if "error" in report:
            spend.refusals += 1
            return
        spend.rounds += 1
        total = _number(report.get("epsilon"))
        if total is not None:
            spend.epsilon_total = max(total, spend.epsilon_total or 0.0)
        noise, rate = _number(report.get("noise_multiplier")), _number(report.get("sample_rate"))
        steps = _number(report.get("steps"))
        if noise and rate and steps is not None and 0 < rate <= 1:
            spend.charges.append((noise, rate, int(steps)))

    def _budget(self, name: str, runs: list[RunSpend], *, named: bool) -> MemberBudget:
        cap = self.policy.privacy.max_epsilon_per_node
        reported = max((r.epsilon_total or 0.0 for r in runs), default=0.0)
        every = [c for r in runs for c in r.charges]
        composed = _composed(every, self.policy.privacy.target_delta) or 0.0
        epsilon = max(reported, composed)
        status = "over" if epsilon > cap else "near" if epsilon >= NEAR_FRACTION * cap else "ok"
        return MemberBudget(name, named, epsilon, cap, status, runs)

    def member(self, name: str) -> MemberBudget:
        """One member's spending.

        Raises:
            AdminNotFoundError: No run recorded this member.
        """
        for budget in self.members():
            if budget.member == name:
                return budget
        raise AdminNotFoundError(
            f"no run recorded a member named {name!r}",
            expected="a member's kit name as GET /v1/budgets lists it",
            fix="check the name (a member that never took part in a run has spent nothing)",
        )

    def plan(
        self,
        *,
        noise_shares: int = 0,
        max_epsilon_per_node: float | None = None,
        target_delta: float | None = None,
        max_mia_auc: float | None = None,
    ) -> dict[str, Any]:
        """``fedembed policy plan`` on the policy, with any of its three numbers replaced.

        Returns the plan as the CLI prints it (``policy`` is the policy file).

        Raises:
            AdminInvalidError: A number is out of range (named by its JSON field).
        """
        _check_int("noise_shares", noise_shares, 0, MAX_PLAN_SHARES)
        privacy, audit = self.policy.privacy, self.policy.audit
        if max_epsilon_per_node is not None:
            _check_float(
                "max_epsilon_per_node",
                max_epsilon_per_node,
                0,
                MAX_PLAN_EPSILON,
                "a number > 0 and <= 100",
            )
            privacy = privacy.model_copy(
                update={"max_epsilon_per_node": float(max_epsilon_per_node)}
            )
        if target_delta is not None:
            _check_float(
                "target_delta",
                target_delta,
                0,
                1,
                "a number strictly between 0 and 1",
                high_open=True,
            )
            privacy = privacy.model_copy(update={"target_delta": float(target_delta)})
        if max_mia_auc is not None:
            _check_float("max_mia_auc", max_mia_auc, 0.5, 1, "a number > 0.5 and <= 1")
            audit = audit.model_copy(update={"max_mia_auc": float(max_mia_auc)})
        policy = self.policy.model_copy(update={"privacy": privacy, "audit": audit})
        try:
            result = plan_privacy(policy, noise_shares=noise_shares)
        except PolicyError as exc:
            raise AdminInvalidError(
                exc.problem, expected=exc.expected, fix=exc.fix or "change the numbers"
            ) from None
        return {"policy": str(self.policy_path), **result.to_dict()}


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AdminInvalidError(
            f"{name} {value!r} is out of range",
            expected=f"{name}: an integer from {low} to {high}",
            fix=f"send {name} as the run's dp-noise-shares (0: no distributed DP)",
        )


def _check_float(
    name: str, value: float, low: float, high: float, expected: str, *, high_open: bool = False
) -> None:
    number = (
        float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
    )
    if (
        number is None
        or not math.isfinite(number)
        or number <= low
        or number > high
        or (high_open and number >= high)
    ):
        raise AdminInvalidError(
            f"{name} {value!r} is out of range",
            expected=f"{name}: {expected}",
            fix=f"send a finite {name} in that range, or leave it out to use the policy's",
        )
