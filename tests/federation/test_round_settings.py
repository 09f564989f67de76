"""The round settings: one type that writes and reads its own record, and the run config."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from embedding_core.errors import FedembedError
from federation.round_settings import RoundSettings, field_key, server_round_of
from federation.run_config import FederationConfig
from federation.wire import CLIPPING_NORM_KEY, SERVER_ROUND_KEY

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"

settings = st.builds(
    RoundSettings,
    num_server_rounds=st.integers(1, 500),
    run_tag=st.text(min_size=1, max_size=20),
    aggregation=st.sampled_from(["ckks", "plaintext", "secaggplus"]),
    adapter_kind=st.sampled_from(["residual_linear", "low_rank", "shift"]),
    adapter_rank=st.integers(0, 64),
    local_epochs=st.integers(1, 10),
    batch_size=st.integers(1, 1024),
    learning_rate=st.floats(1e-6, 1.0),
    temperature=st.floats(1e-3, 1.0),
    dp_enabled=st.just(True),
    target_epsilon=st.floats(0.01, 100.0),
    target_delta=st.floats(1e-9, 0.5),
    max_grad_norm=st.floats(0.01, 10.0),
    update_clip_norm=st.just(0.0),
    dp_noise_shares=st.integers(0, 8),
    weighting=st.sampled_from(["uniform", "declared-counts"]),
)


@given(settings)
def test_a_record_reads_back_as_the_settings_that_wrote_it(original: RoundSettings) -> None:
    record = original.to_record()

    assert RoundSettings.from_record({**record, SERVER_ROUND_KEY: 1}) == original


def test_the_record_keys_are_the_field_names() -> None:
    record = RoundSettings().to_record()

    assert sorted(record) == sorted(field_key(f.name) for f in fields(RoundSettings))


def test_a_coordinator_cannot_send_keys_the_protocol_does_not_define() -> None:
    record = {**RoundSettings().to_record(), "noise-shares": 3}

    with pytest.raises(FedembedError, match="unknown key 'noise-shares'"):
        RoundSettings.from_record(record)


@pytest.mark.parametrize(
    ("key", "value"),
    [("dp-enabled", "yes"), ("batch-size", 2.5), ("target-epsilon", float("nan")), ("run-tag", 3)],
)
def test_a_value_of_the_wrong_type_is_refused_with_its_key(key: str, value: object) -> None:
    record = {**RoundSettings().to_record(), key: value}

    with pytest.raises(FedembedError, match=key):
        RoundSettings.from_record(record)


@pytest.mark.parametrize("server_round", [0, 6, "1", None])
def test_a_round_outside_the_run_is_refused(server_round: object) -> None:
    settings = RoundSettings(num_server_rounds=5)
    record = {SERVER_ROUND_KEY: server_round} if server_round is not None else {}

    with pytest.raises(FedembedError, match=SERVER_ROUND_KEY):
        server_round_of(record, settings)


def test_the_run_config_sends_exactly_its_round_settings() -> None:
    config = FederationConfig.from_run_config(
        {"coordinator-kit": "kit", "dp-noise-shares": 2, "min-nodes": 2, "out-dir": "o"}
    )

    settings = RoundSettings.from_record(config.round_settings().to_record())

    assert settings == config.round_settings()
    assert settings.dp_noise_shares == 2


def test_the_flower_app_config_in_pyproject_is_a_valid_run_config_with_the_defaults() -> None:
    app_config = tomllib.loads(PYPROJECT.read_text())["tool"]["flwr"]["app"]["config"]

    config = FederationConfig.from_run_config(
        {**app_config, "coordinator-kit": app_config["coordinator-kit"] or "kit"}
    )

    defaults = FederationConfig(coordinator_kit="kit")
    for key in app_config:
        if key == "coordinator-kit":
            continue
        name = key.replace("-", "_")
        assert getattr(config, name) == getattr(defaults, name), key
    # Every setting a run may change is there (Flower and the admin API refuse any
    # other key), the k-means and classifier tasks' included; the encoder's output size
    # is the model's, not a run's choice.
    settable = {f.name.replace("_", "-") for f in fields(FederationConfig)}
    assert settable - set(app_config) == {"embedding-dim"}


def test_flowers_client_side_clipping_norm_must_be_the_update_clip_norm() -> None:
    settings = RoundSettings(update_clip_norm=0.5)
    record = settings.to_record()

    assert RoundSettings.from_record({**record, CLIPPING_NORM_KEY: 0.5}) == settings
    with pytest.raises(FedembedError, match=CLIPPING_NORM_KEY):
        RoundSettings.from_record({**record, CLIPPING_NORM_KEY: 5.0})


def test_nodes_are_weighted_uniformly_unless_the_run_says_otherwise() -> None:
    assert RoundSettings().weighting == "uniform"
    assert RoundSettings.from_record({"weighting": "declared-counts"}).weighting == (
        "declared-counts"
    )
    with pytest.raises(FedembedError, match="weighting"):
        RoundSettings.from_record({"weighting": "records"})
