"""The coordinator announces a round's contribution set only for nodes it knows.

Four members (t = 3) and the real ClientApp behind a loopback grid; the rounds run as
the ServerApp runs them, with one config record for every round (as Flower passes it,
shared by the round's messages). Rounds 1 and 2 have a, b and c (d is not connected
yet): round 1 endorses its set, round 2 announces {a, b, c}. In round 3 d has joined, so
no set is announced (d's kit id is not known yet) and d takes part, which it could not
if {a, b, c} were still in the record; round 4 announces {a, b, c, d}.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from flwr.app import ArrayRecord, ConfigRecord
from flwr.serverapp.strategy import FedAvg

from coordinator.ckks_fedavg import CkksFedAvg
from embedding_core.adapter import Adapter, AdapterSide
from federation.record_count_slot import uses_count_slot
from federation.wire import CONTRIBUTION_SET_KEY, ContentKey, MetricKey
from kits.loader import load_coordinator_kit
from tests.coordinator.grid import LoopbackNodes
from tests.privacy.ckks_nodes import SETTINGS, client_app, provision_members

RUN = replace(SETTINGS, num_server_rounds=4)


@pytest.mark.usefixtures("server_app_process")
def test_a_late_node_is_never_sent_an_earlier_rounds_set(tmp_path: Path) -> None:
    # Prepare
    members = provision_members(tmp_path, ["a", "b", "c", "d"])
    app = client_app()
    early = LoopbackNodes(app, {m.flower_id: m.node_config() for m in members[:3]})
    everyone = LoopbackNodes(app, {m.flower_id: m.node_config() for m in members})
    everyone.contexts.update({k: v for k, v in early.contexts.items()})  # one state a node
    kit = load_coordinator_kit(tmp_path / "kits" / "coordinator")
    strategy = CkksFedAvg(
        FedAvg(min_train_nodes=3, min_available_nodes=3, weighted_by_key=MetricKey.UNIT_WEIGHT),
        public_context=kit.ckks_public_context,
        authorized_nodes=kit.authorized_nodes,
        min_replies=RUN.dp_noise_shares,
        count_slot_clip=RUN.max_grad_norm if uses_count_slot(RUN) else 0.0,
    )
    model = ArrayRecord(Adapter(384, side=AdapterSide.QUERY, seed=0).state_dict())
    config = ConfigRecord(dict(RUN.to_record()))  # one record for the whole run, as Flower's
    announced: list[tuple[str, ...] | None] = []
    answered: list[int] = []

    # Execute: rounds 1 and 2 with a, b, c; rounds 3 and 4 with d connected too.
    for server_round, grid in ((1, early), (2, early), (3, everyone), (4, everyone)):
        asked = list(strategy.configure_train(server_round, model, config, grid))
        values = [
            m.content.config_records[ContentKey.CONFIG.value].get(CONTRIBUTION_SET_KEY)
            for m in asked
        ]
        (one,) = {None if v is None else tuple(sorted(map(str, v))) for v in values}  # type: ignore[arg-type]
        announced.append(one)
        replies = list(grid.send_and_receive(asked))
        answered.append(sum(not r.has_error() for r in replies))
        arrays, _ = strategy.aggregate_train(server_round, replies)
        assert arrays is not None, f"round {server_round} was not aggregated"
        model = arrays

    # Assert: no stale set in round 3; d took part from round 3; announced rounds
    # needed no endorsement.
    assert announced == [None, ("a", "b", "c"), None, ("a", "b", "c", "d")]
    assert answered == [3, 3, 4, 4]
    assert strategy.exchanges == [3, 2, 3, 2]
