"""CKKS FedAvg with distributed DP: a sum of fewer noise shares than promised is never decrypted."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from client_node.ckks_mod import CHUNKS, LENGTH
from coordinator.ckks_fedavg import CkksFedAvg
from crypto.ckks_aggregation import encrypt_vector, make_contexts
from federation.wire import ContentKey, MetricKey
from tests.coordinator.replies import train_reply

REFERENCE = ArrayRecord({"w": Array(np.zeros(4, dtype=np.float32))})


def _reply(chunks: list[bytes], node: int) -> Message:
    content = RecordDict(
        {
            ContentKey.CKKS_UPDATE.value: ConfigRecord({CHUNKS: chunks, LENGTH: 4}),
            ContentKey.METRICS.value: MetricRecord({MetricKey.NUM_EXAMPLES.value: 10.0}),
        }
    )
    return train_reply(content, node)


def test_fewer_replies_than_noise_shares_leave_the_model_unchanged() -> None:
    # Prepare: real ciphertexts from two nodes; the federation promised three noise shares.
    secret, public = make_contexts()
    chunks = encrypt_vector(np.ones(4) * 10.0, secret)
    strategy = CkksFedAvg(
        FedAvg(min_train_nodes=1, min_available_nodes=1), public_context=public, min_replies=3
    )
    strategy._reference = REFERENCE  # set by configure_train in a real round

    # Execute: no grid is set, so asking a node to decrypt would fail the test.
    arrays, metrics = strategy.aggregate_train(1, [_reply(chunks, 1), _reply(chunks, 2)])

    # Assert
    assert (arrays, metrics) == (None, None)
