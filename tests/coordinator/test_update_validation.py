from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Message, MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAvg

from coordinator.update_validation import UpdateValidation, check_update
from tests.coordinator.grid import start_round
from tests.coordinator.replies import train_reply

REFERENCE = ArrayRecord(
    {"w": Array(np.zeros((4, 4), dtype=np.float32)), "b": Array(np.zeros(4, dtype=np.float32))}
)


def _record(w: np.ndarray, b: np.ndarray | None = None) -> ArrayRecord:
    return ArrayRecord(
        {"w": Array(w), "b": Array(b if b is not None else np.zeros(4, dtype=np.float32))}
    )


def _reply(arrays: ArrayRecord, node: int) -> Message:
    content = RecordDict({"arrays": arrays, "metrics": MetricRecord({"num-examples": 10})})
    return train_reply(content, node)


def test_good_update_passes() -> None:
    assert check_update(_record(np.full((4, 4), 0.1, np.float32)), REFERENCE, clip_norm=1.0) is None


@pytest.mark.parametrize(
    ("update", "reason"),
    [
        (_record(np.full((4, 4), np.nan, np.float32)), "NaN or Inf"),
        (_record(np.full((4, 4), np.inf, np.float32)), "NaN or Inf"),
        (_record(np.zeros((3, 4), np.float32)), "shape"),
        (_record(np.zeros((4, 4), np.float64)), "dtype"),
        (_record(np.full((4, 4), 1.0, np.float32)), "exceeds the clip norm"),
        (ArrayRecord({"w": Array(np.zeros((4, 4), np.float32))}), "array names"),
    ],
)
def test_bad_update_is_rejected_with_reason(update: ArrayRecord, reason: str) -> None:
    assert reason in (check_update(update, REFERENCE, clip_norm=1.0) or "")


def test_wrapper_drops_bad_updates_and_keeps_global_untouched() -> None:
    strategy = UpdateValidation(FedAvg(min_train_nodes=1, min_available_nodes=1), clip_norm=1.0)
    good = np.full((4, 4), 0.05, np.float32)
    start_round(strategy, 1, REFERENCE, [1, 2, 3])
    replies = [
        _reply(_record(good), 1),
        _reply(_record(np.full((4, 4), np.nan, np.float32)), 2),
        _reply(_record(np.full((4, 4), 5.0, np.float32)), 3),
    ]

    arrays, _ = strategy.aggregate_train(1, replies)

    assert arrays is not None
    np.testing.assert_allclose(arrays["w"].numpy(), good)
    assert [(node, "NaN" in why or "clip" in why) for _, node, why in strategy.rejected] == [
        (2, True),
        (3, True),
    ]


def test_wrapper_with_only_bad_updates_releases_nothing() -> None:
    strategy = UpdateValidation(FedAvg(min_train_nodes=1, min_available_nodes=1), clip_norm=1.0)
    start_round(strategy, 1, REFERENCE, [7])

    arrays, metrics = strategy.aggregate_train(
        1, [_reply(_record(np.zeros((2, 2), np.float32)), 7)]
    )

    assert arrays is None
    assert metrics is None
    assert strategy.rejected[0][1] == 7
