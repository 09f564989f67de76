"""Run-config checks for distributed DP and the server optimiser."""

from __future__ import annotations

from typing import Any

import pytest

from embedding_core.errors import FedembedError
from federation.run_config import FederationConfig

CKKS = {"aggregation": "ckks", "coordinator-kit": "kits/coordinator"}
DISTRIBUTED = {**CKKS, "dp-noise-shares": 3, "min-nodes": 3, "server-learning-rate": 0.003}


def test_distributed_dp_with_ckks_is_accepted_and_sent_to_nodes() -> None:
    config = FederationConfig.from_run_config(DISTRIBUTED)

    assert (config.dp_noise_shares, config.server_learning_rate) == (3, 0.003)
    assert config.round_settings().to_record()["dp-noise-shares"] == 3


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        # The coordinator would see each node's update with a third of the noise.
        ({"aggregation": "plaintext", "allow-insecure-plaintext": True}, "needs CKKS"),
        ({"aggregation": "secaggplus", "server-learning-rate": 0.0}, "needs CKKS"),
        ({"min-nodes": 2}, "min-nodes"),
        ({"dp-enabled": False}, "dp-noise-shares"),
        ({"dp-noise-shares": -1}, "dp-noise-shares"),
        (
            {"node-noise-multiplier": 1.0, "update-clip-norm": 1.0, "dp-noise-shares": 1},
            "node-noise-multiplier",
        ),
        ({"server-learning-rate": -0.1}, "server-learning-rate"),
        ({"update-clip-norm": 1.0}, "update-clip-norm"),
    ],
)
def test_unsafe_or_inconsistent_settings_are_refused(
    overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(FedembedError, match=message):
        FederationConfig.from_run_config({**DISTRIBUTED, **overrides})


def test_server_adam_is_refused_with_secaggplus() -> None:
    with pytest.raises(FedembedError, match="server-learning-rate"):
        FederationConfig.from_run_config(
            {"aggregation": "secaggplus", "min-nodes": 2, "server-learning-rate": 0.01}
        )


def test_one_share_is_local_dp_and_needs_no_secure_aggregation() -> None:
    config = FederationConfig.from_run_config(
        {"aggregation": "plaintext", "allow-insecure-plaintext": True, "dp-noise-shares": 1}
    )

    assert config.dp_noise_shares == 1


def test_node_level_noise_is_refused_with_ckks_rather_than_reported_unadded() -> None:
    # The decrypted CKKS aggregate gets no node-level noise: no epsilon may claim it.
    with pytest.raises(FedembedError, match="node-noise-multiplier"):
        FederationConfig.from_run_config(
            {**CKKS, "node-noise-multiplier": 1.0, "update-clip-norm": 1.0}
        )


def test_node_level_noise_needs_uniform_weights() -> None:
    # The node-level noise z * C / m is calibrated to a mean of m equally weighted updates.
    plaintext = {
        "aggregation": "plaintext",
        "allow-insecure-plaintext": True,
        "node-noise-multiplier": 1.0,
        "update-clip-norm": 1.0,
    }
    assert FederationConfig.from_run_config(plaintext).weighting == "uniform"
    with pytest.raises(FedembedError, match="weighting"):
        FederationConfig.from_run_config({**plaintext, "weighting": "declared-counts"})
