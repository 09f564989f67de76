"""CKKS FedAvg with distributed DP: a sum of fewer noise shares than promised is never decrypted."""

from __future__ import annotations

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from coordinator.ckks_fedavg import CkksFedAvg
from crypto.ckks_aggregation import encrypt_vector, make_contexts
from federation.records import CkksField
from federation.wire import ContentKey, MetricKey
from tests.coordinator.grid import start_round
from tests.coordinator.replies import train_reply

REFERENCE = ArrayRecord({"w": Array(np.zeros(4, dtype=np.float32))})


def _reply(chunks: list[bytes], node: int) -> Message:
    content = RecordDict(
        {
            ContentKey.CKKS_UPDATE.value: ConfigRecord(
                {CkksField.CHUNKS.value: chunks, CkksField.LENGTH.value: 4}
            ),
            ContentKey.METRICS.value: MetricRecord({MetricKey.NUM_EXAMPLES.value: 10.0}),
        }
    )
    return train_reply(content, node)


def test_fewer_replies_than_noise_shares_leave_the_model_unchanged() -> None:
    # Prepare: three nodes are asked (three noise shares promised); two answer with real
    # ciphertexts.
    secret, public = make_contexts()
    chunks = encrypt_vector(np.ones(4) * 10.0, secret)
    strategy = CkksFedAvg(
        FedAvg(min_train_nodes=1, min_available_nodes=1), public_context=public, min_replies=3
    )
    asked = start_round(strategy, 1, REFERENCE, [1, 2, 3])

    # Execute: the grid delivers nothing, so asking a node to decrypt would fail the test.
    arrays, metrics = strategy.aggregate_train(1, [_reply(chunks, 1), _reply(chunks, 2)])

    # Assert
    assert len(asked) == 3
    assert (arrays, metrics) == (None, None)
