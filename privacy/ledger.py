"""The member node's privacy ledger: every DP-SGD charge ever made, persisted on disk.

The ledger is the node's memory of how much privacy its records have spent. It composes
all charges ever recorded (across runs and rounds) with the ledger's accountant
(:class:`privacy.pld_accountant.PLDAccountant`: exact Gaussian DP while every charge is
full-batch, privacy loss distributions otherwise) and refuses a charge that would take
the total past the node's budget *before* recording it. It is a small JSON file written
atomically; it holds mechanism parameters only (noise multiplier, sample rate, steps)
and the observer each charge holds for (:mod:`privacy.observers`), never data or
vectors. The composed epsilon holds for the most informed observer every charge holds
for.

A lost or silently reset ledger would reset the node's privacy spending, so a missing
entry is never papered over: a corrupt file is an error naming the file and the fix, and
a ledger is only created where no file exists.

This module holds the bookkeeping (``PrivacyLedger``); the file format is
:mod:`privacy.ledger_file` and the errors are :mod:`privacy.ledger_errors`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from filelock import FileLock

from privacy.analysis import PrivacyParameterError
from privacy.ledger_errors import DEFAULT_UNIT, BudgetExceededError, LedgerError
from privacy.ledger_file import (
    ACCOUNTANT,
    CONVERSION,
    LedgerEntry,
    check_identity,
    is_finite_number,
    read_ledger,
    utc_timestamp,
    write_ledger,
)
from privacy.observers import Observer, covered_by
from privacy.pld_accountant import PLDAccountant

__all__ = ["PrivacyLedger"]

LOCK_SUFFIX = ".lock"
"""The ledger's inter-process lock file is the ledger's path with this suffix."""

logger = logging.getLogger(__name__)


class PrivacyLedger:
    """Persisted record of a node's DP-SGD privacy spending, with a budget.

    Use ``PrivacyLedger.open`` to create or load one. The epsilon of the ledger composes
    all entries ever charged at the ledger's fixed delta, for the ledger's privacy unit:
    exactly (Gaussian DP, Dong, Roth and Su 2022) while every entry has sample rate 1,
    else with privacy loss distributions (dp-accounting, Poisson-subsampled Gaussian,
    add/remove).
    """

    def __init__(
        self,
        path: Path,
        *,
        node_id: str,
        max_epsilon: float,
        delta: float,
        unit: str,
        entries: list[LedgerEntry],
        created: str,
    ) -> None:
        self._path = path
        self._node_id = node_id
        self._max_epsilon = max_epsilon
        self._delta = delta
        self._unit = unit
        self._entries = entries
        self._created = created
        self._accountant = self._accountant_of(entries)

    # ---------------------------------------------------------------------- opening

    @staticmethod
    def _lock(path: Path) -> FileLock:
        """The inter-process lock of the ledger at ``path`` (a file beside it)."""
        return FileLock(str(path) + LOCK_SUFFIX)

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        node_id: str,
        max_epsilon: float,
        delta: float,
        unit: str = DEFAULT_UNIT,
    ) -> PrivacyLedger:
        """Loads the ledger at ``path``, or creates an empty one if no file exists.

        ``max_epsilon`` comes from the node config and may change between runs (a raised
        budget applies from now on); ``node_id``, ``delta`` and ``unit`` are fixed for the
        life of a ledger, because epsilons at different deltas or units do not compose.

        Args:
            path: The ledger file (JSON).
            node_id: The node this ledger belongs to.
            max_epsilon: The node's privacy budget, > 0.
            delta: Delta of every epsilon in this ledger, 0 < delta < 1.
            unit: The privacy unit, e.g. ``"interaction record"``.

        Raises:
            LedgerError: The file is corrupt or belongs to another node, delta or unit.
            PrivacyParameterError: ``max_epsilon`` or ``delta`` is out of range.
        """
        ledger_path = Path(path)
        if not isinstance(node_id, str) or not node_id.strip():
            raise PrivacyParameterError(
                f"node_id must be a non-empty string, got {node_id!r}",
                expected="the node's id from its node config",
            )
        if not is_finite_number(max_epsilon) or max_epsilon <= 0:
            raise PrivacyParameterError(
                f"max_epsilon must be a finite number > 0, got {max_epsilon!r}",
                expected="the node's privacy budget epsilon, e.g. 8.0",
                fix="set max_epsilon in the node config",
            )
        if not is_finite_number(delta) or not 0.0 < delta < 1.0:
            raise PrivacyParameterError(
                f"delta must lie strictly between 0 and 1, got {delta!r}",
                expected="0 < delta < 1, usually well below 1 / number of records (e.g. 1e-5)",
                fix="set delta in the node config",
            )
        if not isinstance(unit, str) or not unit.strip():
            raise PrivacyParameterError(
                f"unit must be a non-empty string, got {unit!r}",
                expected='the privacy unit, e.g. "interaction record"',
            )
        max_eps, dlt = float(max_epsilon), float(delta)
        ledger_path.parent.mkdir(parents=True, exist_ok=True)
        with cls._lock(ledger_path):
            return cls._open_locked(
                ledger_path, node_id=node_id, max_eps=max_eps, dlt=dlt, unit=unit
            )

    @classmethod
    def _open_locked(
        cls, ledger_path: Path, *, node_id: str, max_eps: float, dlt: float, unit: str
    ) -> PrivacyLedger:
        if not ledger_path.exists():
            ledger_path.parent.mkdir(parents=True, exist_ok=True)
            ledger = cls(
                ledger_path,
                node_id=node_id,
                max_epsilon=max_eps,
                delta=dlt,
                unit=unit,
                entries=[],
                created=utc_timestamp(),
            )
            ledger._save()
            logger.info(
                "open: created ledger %s node=%s max_epsilon=%g delta=%g unit=%s",
                ledger_path,
                node_id,
                max_eps,
                dlt,
                unit,
            )
            return ledger

        document = read_ledger(ledger_path)
        check_identity(ledger_path, document, node_id=node_id, delta=dlt, unit=unit)
        ledger = cls(
            ledger_path,
            node_id=node_id,
            max_epsilon=max_eps,
            delta=dlt,
            unit=unit,
            entries=document["entries"],
            created=str(document["created"]),
        )
        stored_max = document["max_epsilon"]
        if stored_max != max_eps:
            logger.info(
                "open: node=%s max_epsilon changed from %g (file) to %g (config)",
                node_id,
                stored_max,
                max_eps,
            )
            ledger._save()
        logger.info(
            "open: loaded ledger %s node=%s entries=%d spent_epsilon=%.4f max_epsilon=%g",
            ledger_path,
            node_id,
            len(ledger._entries),
            ledger.spent_epsilon(),
            max_eps,
        )
        return ledger

    # ----------------------------------------------------------------------- queries

    @property
    def path(self) -> Path:
        """The ledger file."""
        return self._path

    @property
    def node_id(self) -> str:
        """The node this ledger belongs to."""
        return self._node_id

    @property
    def max_epsilon(self) -> float:
        """The node's privacy budget."""
        return self._max_epsilon

    @property
    def delta(self) -> float:
        """Delta of every epsilon in this ledger."""
        return self._delta

    @property
    def unit(self) -> str:
        """The privacy unit (what one neighbouring dataset adds or removes)."""
        return self._unit

    @property
    def entries(self) -> list[LedgerEntry]:
        """Copies of the recorded charges, oldest first."""
        return [entry.copy() for entry in self._entries]

    def spent_epsilon(self) -> float:
        """Epsilon of all charges ever recorded, composed (0.0 for an empty ledger)."""
        return self._accountant.get_epsilon(self._delta)

    def observer(self) -> Observer:
        """The most informed observer every recorded charge holds for.

        A charge holds for the observer it names and every less informed one
        (:func:`privacy.observers.covered_by`); an empty ledger holds for everyone.
        """
        held = set(Observer)
        for entry in self._entries:
            held &= set(covered_by(Observer(entry["observer"])))
        return max(held, key=list(Observer).index)

    def remaining(self) -> float:
        """Budget left: ``max_epsilon - spent_epsilon``, never below 0."""
        return max(0.0, self._max_epsilon - self.spent_epsilon())

    def preview(self, *, noise_multiplier: float, sample_rate: float, steps: int) -> float:
        """Epsilon the ledger would reach with this charge; records and writes nothing.

        Raises:
            PrivacyParameterError: A parameter is out of range.
        """
        hypothetical = self._accountant.copy()
        hypothetical.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps)
        return hypothetical.get_epsilon(self._delta)

    def summary(self) -> dict[str, Any]:
        """What the ledger covers, for manifests and reports (JSON-ready)."""
        runs = sorted({entry["run_id"] for entry in self._entries})
        spent = self.spent_epsilon()
        composition = (
            "exact Gaussian-DP composition (every charge full-batch)"
            if self._accountant.is_full_batch()
            else "PLD composition"
        )
        observer = self.observer()
        return {
            "node_id": self._node_id,
            "path": str(self._path),
            "unit": self._unit,
            "delta": self._delta,
            "accountant": ACCOUNTANT,
            "conversion": CONVERSION,
            "spent_epsilon": spent,
            "observer": observer.value,
            "holds_for": [o.value for o in covered_by(observer)],
            "max_epsilon": self._max_epsilon,
            "remaining_epsilon": max(0.0, self._max_epsilon - spent),
            "entries": len(self._entries),
            "runs": runs,
            "composition": (
                f"{composition} of all {len(self._entries)} charges recorded on node "
                f"{self._node_id!r} across {len(runs)} run(s), Poisson-subsampled Gaussian "
                f"(DP-SGD), add/remove one {self._unit}; holds for a {observer.value} and "
                "every less informed observer"
            ),
        }

    # ----------------------------------------------------------------------- charging

    def check(self, *, noise_multiplier: float, sample_rate: float, steps: int) -> float:
        """Raise ``BudgetExceededError`` if this charge would not fit; nothing is written.

        Returns:
            The epsilon the node would reach with the charge.
        """
        after = self.preview(
            noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps
        )
        if after > self.max_epsilon:
            raise BudgetExceededError(
                node_id=self.node_id,
                spent_epsilon=self.spent_epsilon(),
                requested_epsilon=after,
                max_epsilon=self.max_epsilon,
                delta=self.delta,
                unit=self.unit,
            )
        return after

    def charge(
        self,
        *,
        noise_multiplier: float,
        sample_rate: float,
        steps: int,
        run_id: str,
        round: int,
        observer: Observer = Observer.FELLOW_MEMBER,
    ) -> float:
        """Records a DP-SGD charge if it fits the budget, and persists the ledger.

        Re-reading the file, checking the budget and writing happen under an
        inter-process file lock (``<ledger>.lock``), so a charge made meanwhile by another
        process or ``PrivacyLedger`` object on the same file is never lost.

        Args:
            noise_multiplier: Noise std divided by the clipping norm, > 0.
            sample_rate: Poisson sampling probability, in (0, 1].
            steps: Number of DP-SGD steps of this charge, >= 0.
            run_id: The training run.
            round: The federated round within the run, >= 0.
            observer: The most informed observer ``noise_multiplier`` holds for: the
                noise that observer faces on one record (:mod:`privacy.observers`).
                The default suits a node that adds all of the noise itself, which every
                observer faces.

        Returns:
            The epsilon spent after this charge.

        Raises:
            BudgetExceededError: The charge would exceed ``max_epsilon``; nothing was
                recorded or written.
            LedgerError: The file on disk is corrupt, missing or changed identity, or
                this run and round were charged before (a replayed round).
            PrivacyParameterError: A parameter is out of range.
        """
        if not isinstance(run_id, str) or not run_id:
            raise PrivacyParameterError(
                f"run_id must be a non-empty string, got {run_id!r}",
                expected="the id of the training run",
            )
        if isinstance(round, bool) or not isinstance(round, int) or round < 0:
            raise PrivacyParameterError(
                f"round must be an integer >= 0, got {round!r}",
                expected="the federated round number",
            )
        try:
            held_for = Observer(observer)
        except ValueError:
            raise PrivacyParameterError(
                f"observer must be one of {[o.value for o in Observer]}, got {observer!r}",
                expected="the observer the charged noise multiplier holds for",
            ) from None
        with self._lock(self._path):
            return self._charge_locked(
                noise_multiplier=noise_multiplier,
                sample_rate=sample_rate,
                steps=steps,
                run_id=run_id,
                round=round,
                observer=held_for,
            )

    def _charge_locked(
        self,
        *,
        noise_multiplier: float,
        sample_rate: float,
        steps: int,
        run_id: str,
        round: int,
        observer: Observer,
    ) -> float:
        self._reload()
        self.check_new_round(run_id=run_id, round=round)
        spent = self.spent_epsilon()
        after = self.preview(
            noise_multiplier=noise_multiplier, sample_rate=sample_rate, steps=steps
        )
        if after > self._max_epsilon:
            logger.warning(
                "charge: refused node=%s run=%s round=%d spent_epsilon=%.4f "
                "epsilon_after=%.4f max_epsilon=%g",
                self._node_id,
                run_id,
                round,
                spent,
                after,
                self._max_epsilon,
            )
            raise BudgetExceededError(
                node_id=self._node_id,
                spent_epsilon=spent,
                requested_epsilon=after,
                max_epsilon=self._max_epsilon,
                delta=self._delta,
                unit=self._unit,
            )
        entry = LedgerEntry(
            run_id=run_id,
            round=round,
            noise_multiplier=float(noise_multiplier),
            sample_rate=float(sample_rate),
            steps=int(steps),
            epsilon_after=after,
            timestamp=utc_timestamp(),
            observer=observer.value,
        )
        accountant = self._accountant.copy()
        accountant.step(
            noise_multiplier=entry["noise_multiplier"],
            sample_rate=entry["sample_rate"],
            steps=entry["steps"],
        )
        self._save(entries=[*self._entries, entry])
        self._entries.append(entry)
        self._accountant = accountant
        logger.info(
            "charge: node=%s run=%s round=%d noise_multiplier=%g sample_rate=%g steps=%d "
            "epsilon_after=%.4f max_epsilon=%g delta=%g observer=%s",
            self._node_id,
            run_id,
            round,
            entry["noise_multiplier"],
            entry["sample_rate"],
            entry["steps"],
            after,
            self._max_epsilon,
            self._delta,
            observer.value,
        )
        return after

    def charged(self, *, run_id: str, round: int) -> bool:
        """Whether a charge for this run and round is already recorded."""
        return any(e["run_id"] == run_id and e["round"] == round for e in self._entries)

    def check_new_round(self, *, run_id: str, round: int) -> None:
        """Raise ``LedgerError`` if this run and round were charged before (a replay)."""
        if self.charged(run_id=run_id, round=round):
            raise LedgerError(
                f"node {self._node_id!r} already trained and was charged for round {round} "
                f"of run {run_id!r}",
                expected="each round of a run once: a second noisy answer for the same round "
                "lets whoever sees both average the noise away",
                fix="start a new run (a new run-tag); a coordinator that replays a round is "
                "refused",
            )

    # ------------------------------------------------------------------ persistence

    def _save(self, entries: list[LedgerEntry] | None = None) -> None:
        write_ledger(
            self._path,
            node_id=self._node_id,
            unit=self._unit,
            delta=self._delta,
            max_epsilon=self._max_epsilon,
            created=self._created,
            entries=self._entries if entries is None else entries,
        )

    def _reload(self) -> None:
        if not self._path.exists():
            raise LedgerError(
                f"privacy ledger {self._path} of node {self._node_id!r} has disappeared",
                expected="the ledger file this node opened, still in place",
                fix="restore the file from a backup; do not recreate it empty, that would "
                "reset the node's recorded privacy spending",
            )
        document = read_ledger(self._path)
        check_identity(
            self._path, document, node_id=self._node_id, delta=self._delta, unit=self._unit
        )
        entries: list[LedgerEntry] = document["entries"]
        if entries != self._entries:
            logger.info(
                "charge: node=%s ledger %s changed on disk (%d entries, was %d); using the file",
                self._node_id,
                self._path,
                len(entries),
                len(self._entries),
            )
            self._entries = entries
            self._accountant = self._accountant_of(entries)

    @staticmethod
    def _accountant_of(entries: list[LedgerEntry]) -> PLDAccountant:
        accountant = PLDAccountant()
        for entry in entries:
            accountant.step(
                noise_multiplier=entry["noise_multiplier"],
                sample_rate=entry["sample_rate"],
                steps=entry["steps"],
            )
        return accountant
