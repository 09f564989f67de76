"""The node operator's bounds: one type that writes and reads its own node-config record."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedding_core.errors import FedembedError
from federation.node_privacy import NodePrivacy, RoundRefusedError
from federation.round_settings import RoundSettings
from federation.wire import NodeConfigKey

operators = st.builds(
    NodePrivacy,
    max_epsilon=st.floats(0.01, 100.0),
    require_dp=st.booleans(),
    max_noise_shares=st.integers(1, 50),
    min_noise_multiplier=st.floats(0.0, 20.0),
    public_record_count=st.booleans(),
)


@given(operators)
def test_a_node_config_reads_back_as_the_bounds_that_wrote_it(operator: NodePrivacy) -> None:
    assert NodePrivacy.from_node_config(operator.to_node_config()) == operator


def test_node_config_text_values_are_read_as_flower_passes_them() -> None:
    config = {"max-epsilon": "4", "require-dp": "false", "max-noise-shares": 5}

    operator = NodePrivacy.from_node_config(config)

    assert operator == NodePrivacy(max_epsilon=4.0, require_dp=False, max_noise_shares=5)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, NodeConfigKey.MAX_EPSILON),
        ({"max-epsilon": 0.0}, NodeConfigKey.MAX_EPSILON),
        ({"max-epsilon": "eight"}, NodeConfigKey.MAX_EPSILON),
        ({"max-epsilon": 8.0, "require-dp": "maybe"}, NodeConfigKey.REQUIRE_DP),
        ({"max-epsilon": 8.0, "max-noise-shares": 2.5}, NodeConfigKey.MAX_NOISE_SHARES),
        ({"max-epsilon": 8.0, "max-noise-shares": 0}, NodeConfigKey.MAX_NOISE_SHARES),
        ({"max-epsilon": 8.0, "min-noise-multiplier": -1}, NodeConfigKey.MIN_NOISE_MULTIPLIER),
        ({"max-epsilon": 8.0, "public-record-count": "yes"}, NodeConfigKey.PUBLIC_RECORD_COUNT),
    ],
)
def test_a_bad_node_config_names_the_key(config: dict[str, object], key: NodeConfigKey) -> None:
    with pytest.raises(FedembedError, match=key.value):
        NodePrivacy.from_node_config(config)


def test_an_honest_round_within_the_bounds_passes() -> None:
    operator = NodePrivacy(max_epsilon=8.0, max_noise_shares=3)

    operator.check_round(RoundSettings(target_epsilon=8.0, dp_noise_shares=3), node_name="n")
    operator.check_noise(1.0, node_name="n")


def test_a_non_dp_round_passes_only_where_the_operator_allows_it() -> None:
    settings = RoundSettings(dp_enabled=False)

    NodePrivacy(max_epsilon=1.0, require_dp=False).check_round(settings, node_name="n")
    with pytest.raises(RoundRefusedError, match="require-dp"):
        NodePrivacy(max_epsilon=1.0).check_round(settings, node_name="n")


def test_a_record_count_is_private_unless_the_operator_declares_it_public() -> None:
    assert NodePrivacy.from_node_config({"max-epsilon": 8.0}).public_record_count is False
    declared = NodePrivacy.from_node_config({"max-epsilon": 8.0, "public-record-count": "true"})
    assert declared.public_record_count is True


def test_a_declared_counts_round_passes_only_where_the_count_is_declared_public() -> None:
    settings = RoundSettings(weighting="declared-counts")

    NodePrivacy(max_epsilon=8.0, public_record_count=True).check_round(settings, node_name="n")
    with pytest.raises(RoundRefusedError, match="public-record-count"):
        NodePrivacy(max_epsilon=8.0).check_round(settings, node_name="n")
