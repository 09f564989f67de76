"""The run config's ``encoder-backend``: one validated backend for every node and the evaluation."""

from __future__ import annotations

import pytest

from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, ENCODER_BACKENDS
from embedding_core.errors import FedembedError
from federation.round_settings import RoundSettings
from federation.run_config import FederationConfig

CKKS = {"aggregation": "ckks", "coordinator-kit": "kits/coordinator"}


@pytest.mark.parametrize("backend", ENCODER_BACKENDS)
def test_each_backend_reaches_the_nodes_in_the_round_settings(backend: str) -> None:
    # Execute
    config = FederationConfig.from_run_config({**CKKS, "encoder-backend": backend})
    record = config.round_settings().to_record()
    # Assert
    assert config.encoder_backend == backend
    assert record["encoder-backend"] == backend
    assert RoundSettings.from_record(record).encoder_backend == backend


def test_the_default_is_the_product_default() -> None:
    # Execute / Assert
    assert FederationConfig.from_run_config(CKKS).encoder_backend == DEFAULT_ENCODER_BACKEND


def test_an_unknown_backend_in_the_run_config_is_refused_naming_the_key() -> None:
    # Execute
    with pytest.raises(FedembedError) as refused:
        FederationConfig.from_run_config({**CKKS, "encoder-backend": "onnx-int4"})
    # Assert
    error = refused.value
    assert "run config encoder-backend='onnx-int4' is invalid" in error.problem
    assert all(repr(backend) in error.expected for backend in ENCODER_BACKENDS)
    assert "--run-config" in error.fix


def test_a_node_refuses_round_settings_with_an_unknown_backend() -> None:
    # Prepare: what a coordinator of another version (or a tampered record) might send
    record = {**RoundSettings().to_record(), "encoder-backend": "fp16"}
    # Execute / Assert
    with pytest.raises(FedembedError, match="round settings encoder-backend='fp16'"):
        RoundSettings.from_record(record)
