"""The coordinator's loop of DP statistics rounds over the CKKS secure sum, in one place.

Federated k-means (:mod:`coordinator.kmeans_strategy`) and the classifier head
(:mod:`coordinator.classifier_strategy`) run the same rounds: every round the
coordinator waits for the nodes, sends each the public state (message type
``train.<task>``), admits only signed contributions, has every contributor endorse the
set and one of them decrypt the *sum* of at least ``t`` (``dp-noise-shares``) of them
(:class:`CkksSecureSum`, the checks of a training round,
:class:`coordinator.ckks_fedavg.CkksFedAvg`), and post-processes the noisy total into the
next public state. It never holds one node's statistic: only ciphertexts and the total.

A round with fewer than ``t`` admitted contributions is not decrypted and leaves the
state as it was. :func:`run_statistics_rounds` writes the run summary (``history.json``)
and the task's publication; a run that aggregated no round publishes nothing and fails.
Each task supplies its message content, its update step and its publication
(:class:`StatisticsRounds`).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from numpy.typing import NDArray

from coordinator.ckks_fedavg import CkksFedAvg
from coordinator.publication import FederationFailedError
from coordinator.run_folder import HISTORY_FILE, STATUS_FAILED, STATUS_SUCCEEDED
from embedding_core.atomic_file import atomic_write_json
from federation.contributions import SignedContribution
from federation.records import CkksField
from federation.round_settings import RoundSettings
from federation.run_config import FederationConfig
from federation.wire import SERVER_ROUND_KEY, ContentKey, as_int
from kits.loader import load_coordinator_kit

__all__ = [
    "CkksSecureSum",
    "StatisticsRounds",
    "round_messages",
    "run_statistics_rounds",
    "statistics_secure_sum",
    "wait_for_nodes",
]

logger = logging.getLogger(__name__)

_NODE_WAIT_S = 0.2


class CkksSecureSum(CkksFedAvg):
    """The CKKS secure sum of signed contributions, without FedAvg's model update.

    Reuses :class:`CkksFedAvg`'s admission (authorised signatures, once per node id),
    announced or endorsed set and decryption by a contributor; returns the decrypted total.
    """

    task = "kmeans"
    """The log prefix of the task whose rounds it sums."""

    def secure_sum(
        self, grid: Grid, *, run_tag: str, server_round: int, replies: list[Message], length: int
    ) -> tuple[NDArray[np.float64] | None, int]:
        """The decrypted sum of the admitted contributions, and how many it holds.

        ``None`` when fewer than ``min_replies`` were admitted or a contributor did not
        endorse the set: nothing is decrypted then.
        """
        self._grid = grid
        self._run_tag = run_tag
        self._kit_ids = {}  # known again only once this round's contributions are summed
        valid: list[Message] = []
        contributions: list[SignedContribution] = []
        seen: set[str] = set()
        for reply in replies:
            if reply.has_error():
                self._refuse(server_round, reply, str(reply.error.reason))
                continue
            record = reply.content.config_records.get(ContentKey.CKKS_UPDATE.value)
            if record is None or as_int(record.get(CkksField.LENGTH.value, -1)) != length:
                self._refuse(server_round, reply, f"no CKKS contribution of length {length}")
                continue
            contribution = self._admit(server_round, reply, record, seen)
            if contribution is not None:
                contributions.append(contribution)
                valid.append(reply)
        if not valid or len(valid) < self.min_replies:
            logger.warning(
                "%s: round=%d %d of the %d contributions needed; sum not decrypted",
                self.task,
                server_round,
                len(valid),
                max(self.min_replies, 1),
            )
            return None, len(valid)
        return self._sum_admitted(server_round, valid, contributions, length), len(valid)


def statistics_secure_sum(config: FederationConfig, task: str) -> CkksSecureSum:
    """The secure sum of a run's statistics: the coordinator kit's keys, ``t`` replies."""
    kit = load_coordinator_kit(config.coordinator_kit)
    secure = CkksSecureSum(
        FedAvg(),
        public_context=kit.ckks_public_context,
        authorized_nodes=kit.authorized_nodes,
        min_replies=max(config.dp_noise_shares, 1),
        timeout=config.round_timeout,
    )
    secure.task = task
    return secure


def wait_for_nodes(grid: Grid, needed: int, timeout: float) -> list[int]:
    """The grid's node ids once ``needed`` are connected, or those there at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= needed or time.monotonic() > deadline:
            return nodes
        time.sleep(_NODE_WAIT_S)


def round_messages(
    nodes: list[int],
    *,
    settings: RoundSettings,
    server_round: int,
    message_type: str,
    task_key: str,
    task_record: dict[str, Any],
    state_key: str,
    state: dict[str, NDArray[np.float64]],
) -> list[Message]:
    """One ``message_type`` message per node: round settings, task settings, public state."""
    record = {**settings.to_record(), SERVER_ROUND_KEY: server_round}
    arrays = {name: Array(np.ascontiguousarray(value)) for name, value in state.items()}
    return [
        Message(
            RecordDict(
                {
                    ContentKey.CONFIG.value: ConfigRecord(record),  # type: ignore[arg-type]
                    task_key: ConfigRecord(task_record),
                    state_key: ArrayRecord(arrays),
                }
            ),
            dst_node_id=node,
            message_type=message_type,
        )
        for node in nodes
    ]


class StatisticsRounds(ABC):
    """One task's part of the loop: its messages, its update step, its publication.

    Attributes:
        task: The task's name in logs and summaries (``kmeans``, ``classifier``).
        label: The task in a sentence (``k-means``, ``classifier``).
        rounds: How many rounds the run has.
        length: The length of a node's contribution (and of the decrypted sum).
        publication_file: The published file's name in the run folder.
        summary_key: The summary's key naming the published file.
    """

    task: str
    label: str
    rounds: int
    length: int
    publication_file: str
    summary_key: str

    @abstractmethod
    def messages(self, nodes: list[int], server_round: int) -> list[Message]:
        """The round's message to every node (the public state)."""

    @abstractmethod
    def update(self, total: NDArray[np.float64], *, server_round: int) -> dict[str, Any]:
        """Post-process round ``server_round``'s decrypted total into the next state.

        Returns the round's extra history fields.
        """

    @abstractmethod
    def publication(self, rounds: list[dict[str, Any]]) -> dict[str, Any]:
        """What is published once a round was aggregated (DP, public)."""


def _summary(
    task: str,
    config: FederationConfig,
    history: list[dict[str, Any]],
    secure: CkksSecureSum,
    started: float,
) -> dict[str, Any]:
    """The run summary without its outcome: task, tag, rounds so far, refusals, seconds."""
    return {
        "task": task,
        "run_tag": config.run_tag,
        "rounds": history,
        "refusals": secure.refusals,
        "seconds": time.perf_counter() - started,
    }


def run_statistics_rounds(
    grid: Grid,
    config: FederationConfig,
    rounds_of: StatisticsRounds,
    *,
    secure: CkksSecureSum,
    started: float,
) -> dict[str, object]:
    """Run the task's rounds, publish its result; returns the run summary.

    ``started`` is the run's start (``time.perf_counter``), for the summary's seconds.

    Raises:
        FederationFailedError: No round was aggregated (nothing is published).
    """
    out_dir = Path(config.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    task = rounds_of.task
    history: list[dict[str, Any]] = []
    for server_round in range(1, rounds_of.rounds + 1):
        nodes = wait_for_nodes(grid, config.min_nodes, config.round_timeout)
        messages = rounds_of.messages(nodes, server_round)
        secure.announce(server_round, messages)
        replies = list(grid.send_and_receive(messages, timeout=config.round_timeout))
        total, admitted = secure.secure_sum(
            grid,
            run_tag=config.run_tag,
            server_round=server_round,
            replies=replies,
            length=rounds_of.length,
        )
        entry: dict[str, Any] = {"round": server_round, "nodes": admitted, "released": False}
        if total is not None:
            entry.update(released=True, **rounds_of.update(total, server_round=server_round))
        history.append(entry)
        logger.info(
            "%s: round=%d nodes=%d released=%s", task, server_round, admitted, entry["released"]
        )
        # The progress so far, for the admin API (rewritten each round; final below).
        atomic_write_json(out_dir / HISTORY_FILE, _summary(task, config, history, secure, started))
    summary = _summary(task, config, history, secure, started)
    if not any(r["released"] for r in history):
        reason = f"no {rounds_of.label} round of {rounds_of.rounds} was aggregated"
        summary.update(status=STATUS_FAILED, reason=reason)
        atomic_write_json(out_dir / HISTORY_FILE, summary)
        raise FederationFailedError(
            reason,
            expected=f"at least max(dp-noise-shares, 1) = {secure.min_replies} nodes answering",
            fix="see the refusals in history.json; the nodes' logs name their reasons",
        )
    published = out_dir / rounds_of.publication_file
    atomic_write_json(published, rounds_of.publication(history))
    summary.update(
        {
            "status": STATUS_SUCCEEDED,
            rounds_of.summary_key: str(published),
            "published": str(published),
        }
    )
    atomic_write_json(out_dir / HISTORY_FILE, summary)
    logger.info("%s: published %s", task, published)
    return summary
