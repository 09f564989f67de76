"""FedAvg over CKKS-encrypted updates: the coordinator sums ciphertexts it cannot read.

Each node sends ``Enc(n_i * (w_i - w))`` under the consortium's CKKS key (see
``client_node.ckks_mod``). This wrapper adds the ciphertexts with the public context
only, asks one participating node to decrypt the *sum* (a ``query`` message; the node
learns only the aggregate, which every node receives next round anyway), divides by
``sum(n_i)`` and applies the mean update to the global model, optionally with
node-level Gaussian noise. No single node's update is ever decrypted anywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg

from coordinator.strategy_wrapper import StrategyWrapper
from crypto.ckks_aggregation import sum_encrypted
from embedding_core.errors import FedembedError
from federation.records import CkksField, flatten, unflatten
from federation.round_settings import field_key
from federation.wire import (
    AggregationMode,
    ContentKey,
    MetricKey,
    as_bytes_list,
    as_float,
    as_int,
)

__all__ = ["CkksFedAvg"]

logger = logging.getLogger(__name__)

QUERY_MESSAGE_TYPE = "query"


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
    ) -> None:
        super().__init__(strategy)
        self.fedavg = strategy
        self.public_context = public_context
        self.noise_std = noise_std
        self.timeout = timeout
        self.min_replies = min_replies
        self._rng = np.random.default_rng(seed)
        self._grid: Grid | None = None
        self.seconds_sum: list[float] = []

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
        return super().configure_train(server_round, arrays, config, grid)

    def _decrypt_sum(self, node_id: int, chunks: list[bytes], length: int) -> np.ndarray:
        assert self._grid is not None
        record = ConfigRecord({CkksField.CHUNKS.value: chunks, CkksField.LENGTH.value: length})
        message = Message(
            RecordDict({ContentKey.CKKS_SUM.value: record}),
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

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        """Sum ciphertexts, have a node decrypt the sum, apply the mean update."""
        assert self._reference is not None
        length = int(flatten(self._reference).size)
        valid: list[Message] = []
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
        summed = sum_encrypted(
            [
                as_bytes_list(
                    r.content.config_records[ContentKey.CKKS_UPDATE.value][CkksField.CHUNKS.value]
                )
                for r in valid
            ],
            self.public_context,
        )
        weights = [
            as_float(
                r.content.metric_records[ContentKey.METRICS.value][MetricKey.NUM_EXAMPLES.value]
            )
            for r in valid
        ]
        total = self._decrypt_sum(valid[0].metadata.src_node_id, summed, length)
        mean = total / sum(weights)
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
