"""FedAvg over CKKS-encrypted updates: the coordinator sums ciphertexts it cannot read.

Each node sends ``Enc(n_i * (w_i - w))`` under the consortium's CKKS key (see
``client_node.ckks_mod``). This wrapper, which holds only the public context, asks one
participating node to sum the admitted ciphertexts and decrypt the *sum* (rounded before
it leaves; the aggregate every node receives next round anyway), divides by a
denominator and applies the mean update, optionally with node-level Gaussian noise.

Only contributions signed by a key on the coordinator kit's authorised list, for this
run and round, count, once per node id (``federation.contributions``); every other reply
is dropped and kept in :attr:`CkksFedAvg.refusals`. No two overlapping sums of a round
may decrypt, so the set is fixed first: *announced* in the train messages
(``contribution-set``) when every node asked contributed the round before, each
signature then binding it (two exchanges a round; if an announced node does not
contribute, nothing is decrypted and the next round endorses), else *endorsed* by every
contributor after training (``federation.contribution_endorsement``; three exchanges).
The decrypting node re-checks and re-sums the contributions itself.

The denominator (``federation.record_count_slot``): under ``weighting =
"declared-counts"`` the sum of the nodes' declared (public) counts; under ``uniform``
the number of answering nodes, or, under distributed DP, the DP-noised record count the
nodes put in the sum's last slot. No private count is read in plaintext.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from coordinator.strategy_wrapper import StrategyWrapper
from crypto.ckks_aggregation import context_fingerprint
from crypto.contribution_signature import ContributionSignatureError
from embedding_core.errors import FedembedError
from federation.contribution_endorsement import EndorseRequest
from federation.contributions import (
    ContributionField,
    DecryptRequest,
    SignedContribution,
    verify_contribution,
)
from federation.record_count_slot import records_from_slot
from federation.records import CkksField, flatten, unflatten
from federation.round_settings import RoundSettings, field_key
from federation.wire import (
    CONTRIBUTION_SET_KEY,
    AggregationMode,
    ContentKey,
    MetricKey,
    WeightingMode,
    as_bytes_list,
    as_float,
    as_int,
)

__all__ = ["CkksFedAvg"]

logger = logging.getLogger(__name__)

QUERY_MESSAGE_TYPE = "query"


def _declared_count(reply: Message) -> float:
    """The record count a node declared public (0 when it sent none)."""
    metrics = reply.content.metric_records.get(ContentKey.METRICS.value, MetricRecord())
    value = metrics.get(MetricKey.NUM_EXAMPLES.value)
    count = 0.0 if value is None else as_float(value)
    return count if math.isfinite(count) and count > 0 else 0.0


class CkksFedAvg(StrategyWrapper):
    """Wrap FedAvg (its sampling and metric aggregation) with encrypted summation.

    Args:
        strategy: The FedAvg whose node sampling and metric aggregation are reused.
        public_context: Serialized TenSEAL context without secret key.
        noise_std: Standard deviation of Gaussian noise added to the mean update
            (node-level DP: ``noise_multiplier * clip_norm / nodes``); 0 for none.
        timeout: Seconds to wait for the decrypting node.
        min_replies: Fewest valid updates a round may aggregate (distributed DP: the
            number of noise shares the sum must hold); fewer leave the model unchanged.
        weighting: The run's ``weighting`` (``uniform`` or ``declared-counts``).
        count_slot_clip: The per-unit clip norm ``C`` when the nodes append the noisy
            count slot (uniform weights with distributed DP), else 0.
        authorized_nodes: The coordinator kit's authorised node list (node id ->
            OpenSSH public key); only contributions signed by these keys are summed.
    """

    def __init__(
        self,
        strategy: FedAvg,
        *,
        public_context: bytes,
        noise_std: float = 0.0,
        timeout: float = 600.0,
        seed: int | None = None,
        min_replies: int = 0,
        weighting: str = WeightingMode.UNIFORM.value,
        count_slot_clip: float = 0.0,
        authorized_nodes: Mapping[str, str],
    ) -> None:
        super().__init__(strategy)
        self.authorized_nodes = dict(authorized_nodes)
        self.ckks_fingerprint = context_fingerprint(public_context)
        self.refusals: list[dict[str, Any]] = []
        self._run_tag = RoundSettings().run_tag
        self.weighting = weighting
        self.count_slot_clip = count_slot_clip
        self.fedavg = strategy
        self.public_context = public_context
        self.noise_std = noise_std
        self.timeout = timeout
        self.min_replies = min_replies
        self._rng = np.random.default_rng(seed)
        self._grid: Grid | None = None
        self.seconds_sum: list[float] = []
        self._kit_ids: dict[int, str] = {}
        """Flower node id -> kit node id of the last round's admitted contributions."""
        self._announced: dict[int, tuple[str, ...]] = {}
        self.exchanges: list[int] = []
        """Message exchanges each decrypted round took (train included): 2 or 3."""

    def summary(self) -> None:
        """Log the configuration."""
        logger.info("strategy: CKKS secure aggregation, noise_std=%s", self.noise_std)
        self.strategy.summary()

    def configure_train(
        self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid: Grid
    ) -> Iterable[Message]:
        """Ask nodes for encrypted updates."""
        self._grid = grid
        config[field_key("aggregation")] = AggregationMode.CKKS.value
        self._run_tag = str(config.get(field_key("run_tag"), RoundSettings().run_tag))
        # Flower passes the same config record every round and FedAvg shares it between
        # the round's messages: a set announced before must never reach this round.
        config.pop(CONTRIBUTION_SET_KEY, None)
        messages = list(super().configure_train(server_round, arrays, config, grid))
        self.announce(server_round, messages)
        return messages

    def announce(self, server_round: int, messages: list[Message]) -> tuple[str, ...]:
        """Announce the round's set in its train ``messages``; the set (empty: none).

        Announced when every asked node's kit id is known from the last round's admitted
        contributions and there are at least ``max(min_replies, 2)`` of them; the set
        goes into each message's config record (``contribution-set``).
        """
        kit_ids = [self._kit_ids.get(m.metadata.dst_node_id) for m in messages]
        known = [k for k in kit_ids if k is not None]
        members: tuple[str, ...] = ()
        if len(known) == len(messages) == len(set(known)) >= max(self.min_replies, 2):
            members = tuple(sorted(known))
            self._announced[server_round] = members
        for message in messages:
            config = message.content.config_records[ContentKey.CONFIG.value]
            if members:
                config[CONTRIBUTION_SET_KEY] = list(members)
            else:
                config.pop(CONTRIBUTION_SET_KEY, None)
        return members

    def _sum_admitted(
        self,
        server_round: int,
        valid: list[Message],
        contributions: list[SignedContribution],
        length: int,
    ) -> np.ndarray | None:
        """Decrypt the sum of the admitted contributions (announced or endorsed set).

        ``None`` when the announced set did not all contribute or a contributor did not
        endorse the set: nothing is decrypted then.
        """
        announced = self._announced.pop(server_round, ())
        self._kit_ids = {
            r.metadata.src_node_id: c.node_id for r, c in zip(valid, contributions, strict=True)
        }
        if announced:
            if sorted(c.node_id for c in contributions) != list(announced):
                logger.warning(
                    "aggregate: round=%d %d of the %d announced nodes contributed; sum not "
                    "decrypted, the next round endorses its set",
                    server_round,
                    len(contributions),
                    len(announced),
                )
                self._kit_ids = {}
                return None
            endorsements: list[bytes] = []
        else:
            endorsed = self._endorse(server_round, valid, contributions)
            if endorsed is None:
                # A set not every contributor endorsed is never decrypted.
                return None
            endorsements = endorsed
        # The node that replied last decrypts: it has just handled a message, so its
        # SuperNode polls the SuperLink soonest (deployment.flower_supernode.PollClock).
        total = self._decrypt_sum(
            valid[-1].metadata.src_node_id,
            server_round,
            contributions,
            endorsements,
            length,
            members=announced,
        )
        self.exchanges.append(2 if announced else 3)
        return total

    def _decrypt_sum(
        self,
        node_id: int,
        server_round: int,
        contributions: list[SignedContribution],
        endorsements: list[bytes],
        length: int,
        *,
        members: tuple[str, ...] = (),
    ) -> np.ndarray:
        assert self._grid is not None
        request = DecryptRequest(
            run_tag=self._run_tag,
            server_round=server_round,
            length=length,
            contributions=tuple(contributions),
            endorsements=tuple(endorsements),
            members=members,
        )
        message = Message(
            RecordDict({ContentKey.CKKS_DECRYPT.value: request.to_record()}),
            dst_node_id=node_id,
            message_type=QUERY_MESSAGE_TYPE,
        )
        (reply,) = list(self._grid.send_and_receive([message], timeout=self.timeout))
        if reply.has_error():
            raise FedembedError(
                f"node {node_id} could not decrypt the aggregate: {reply.error.reason}"
            )
        total = reply.content.array_records[ContentKey.ARRAYS.value][CkksField.SUM.value].numpy()
        return np.asarray(total, dtype=np.float64)

    def _endorse(
        self, server_round: int, valid: list[Message], contributions: list[SignedContribution]
    ) -> list[bytes] | None:
        """Every contributor's endorsement of the set, or None if one does not endorse it."""
        assert self._grid is not None
        request = EndorseRequest(
            run_tag=self._run_tag,
            server_round=server_round,
            node_ids=tuple(c.node_id for c in contributions),
            digests=tuple(c.digest for c in contributions),
            signatures=tuple(c.signature for c in contributions),
        )
        messages = [
            Message(
                RecordDict({ContentKey.CKKS_ENDORSE.value: request.to_record()}),
                dst_node_id=reply.metadata.src_node_id,
                message_type=QUERY_MESSAGE_TYPE,
            )
            for reply in valid
        ]
        answers = {
            answer.metadata.src_node_id: answer
            for answer in self._grid.send_and_receive(messages, timeout=self.timeout)
        }
        endorsements: list[bytes] = []
        for reply in valid:
            node = reply.metadata.src_node_id
            answer = answers.get(node)
            record = (
                answer.content.config_records.get(ContentKey.CKKS_ENDORSE.value)
                if answer is not None and not answer.has_error()
                else None
            )
            value = None if record is None else record.get(ContributionField.ENDORSEMENT.value)
            if not isinstance(value, bytes):
                logger.warning(
                    "aggregate: round=%d node=%d did not endorse the set; sum not decrypted",
                    server_round,
                    node,
                )
                return None
            endorsements.append(value)
        return endorsements

    def _refuse(self, server_round: int, reply: Message, reason: str) -> None:
        node = reply.metadata.src_node_id
        logger.warning("aggregate: round=%d node=%d refused: %s", server_round, node, reason)
        self.refusals.append({"round": server_round, "node": str(node), "reason": reason})

    def _admit(
        self, server_round: int, reply: Message, record: ConfigRecord, seen: set[str]
    ) -> SignedContribution | None:
        """The reply's contribution if an authorised key signed it for this round, once."""
        try:
            chunks = as_bytes_list(record[CkksField.CHUNKS.value])
            contribution = SignedContribution.from_update(dict(record), chunks)
            verify_contribution(
                contribution,
                authorized=self.authorized_nodes,
                run_tag=self._run_tag,
                flower_run_id=int(reply.metadata.run_id),
                server_round=server_round,
                ckks_fingerprint=self.ckks_fingerprint,
            )
        except (ContributionSignatureError, KeyError, TypeError):
            self._refuse(server_round, reply, "not signed by an authorised node key")
            return None
        if contribution.node_id in seen:
            self._refuse(server_round, reply, f"node {contribution.node_id} already counted")
            return None
        seen.add(contribution.node_id)
        return contribution

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Admit signed contributions, have a node verify, sum and decrypt them, apply the mean."""
        assert self._reference is not None
        self._kit_ids = {}  # known again only once this round's contributions are summed
        length = int(flatten(self._reference).size) + (1 if self.count_slot_clip > 0 else 0)
        valid: list[Message] = []
        contributions: list[SignedContribution] = []
        seen: set[str] = set()
        for reply in replies:
            if reply.has_error():
                logger.warning(
                    "aggregate: round=%d node=%d error: %s",
                    server_round,
                    reply.metadata.src_node_id,
                    reply.error.reason,
                )
                continue
            record = reply.content.config_records.get(ContentKey.CKKS_UPDATE.value)
            if record is None or as_int(record[CkksField.LENGTH.value]) != length:
                logger.warning(
                    "aggregate: round=%d node=%d rejected: no CKKS update of length %d",
                    server_round,
                    reply.metadata.src_node_id,
                    length,
                )
                continue
            if self.weighting == WeightingMode.DECLARED_COUNTS and not _declared_count(reply):
                logger.warning(
                    "aggregate: round=%d node=%d rejected: no declared record count",
                    server_round,
                    reply.metadata.src_node_id,
                )
                continue
            contribution = self._admit(server_round, reply, record, seen)
            if contribution is None:
                continue
            contributions.append(contribution)
            valid.append(reply)
        if not valid:
            logger.warning("aggregate: round=%d no valid update; model unchanged", server_round)
            return None, None
        if len(valid) < self.min_replies:
            # Distributed DP: a sum of fewer noise shares than promised is never decrypted.
            logger.warning(
                "aggregate: round=%d only %d of the %d noise shares arrived; sum not "
                "decrypted, model unchanged",
                server_round,
                len(valid),
                self.min_replies,
            )
            return None, None
        started = time.perf_counter()
        total = self._sum_admitted(server_round, valid, contributions, length)
        if total is None:
            return None, None  # the model stays
        if self.count_slot_clip > 0:
            denominator = records_from_slot(
                float(total[-1]), clip_norm=self.count_slot_clip, nodes=len(valid)
            )
            total = total[:-1]
        elif self.weighting == WeightingMode.DECLARED_COUNTS:
            denominator = sum(_declared_count(r) for r in valid)
        else:
            denominator = float(len(valid))
        mean = total / denominator
        if self.noise_std > 0:
            mean = mean + self._rng.normal(0.0, self.noise_std, size=mean.shape)
        self.seconds_sum.append(time.perf_counter() - started)
        arrays = unflatten(flatten(self._reference) + mean, self._reference)
        metrics = self.fedavg.train_metrics_aggr_fn(
            [r.content for r in valid], self.fedavg.weighted_by_key
        )
        logger.info(
            "aggregate: round=%d nodes=%d ckks_seconds=%.2f",
            server_round,
            len(valid),
            self.seconds_sum[-1],
        )
        return arrays, metrics
