"""The k-means run-config keys: their checks, and the record every k-means round carries."""

from __future__ import annotations

import pytest

from embedding_core.errors import FedembedError
from federation.kmeans_settings import KMeansSettings, kmeans_round_settings
from federation.run_config import FederationConfig

VALID = {
    "task": "kmeans",
    "kmeans-k": "4",
    "kmeans-rounds": 3,
    "kmeans-epsilon": 2.0,
    "kmeans-public-corpus": "/data/public.csv",
    "aggregation": "ckks",
    "coordinator-kit": "/kits/coordinator",
    "dp-noise-shares": 3,
    "min-nodes": 3,
    "run-tag": "map-1",
}


def test_a_kmeans_run_config_is_read_with_its_keys() -> None:
    config = FederationConfig.from_run_config(VALID)

    assert (config.task, config.kmeans_k, config.kmeans_rounds) == ("kmeans", 4, 3)
    assert config.kmeans_records == "records.csv"
    settings = kmeans_round_settings(config, config.round_settings())
    assert settings.target_epsilon == 2.0
    assert settings.num_server_rounds == 3
    assert settings.dp_noise_shares == 3
    assert settings.run_tag == "map-1"


def test_a_training_run_ignores_the_kmeans_keys() -> None:
    config = FederationConfig.from_run_config({"coordinator-kit": "/kits/c"})

    assert config.task == "train"


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"task": "cluster"}, "task='cluster'"),
        ({"kmeans-k": 1}, "kmeans-k=1"),
        ({"kmeans-rounds": 0}, "kmeans-rounds=0"),
        ({"kmeans-epsilon": 0.0}, "kmeans-epsilon=0.0"),
        ({"kmeans-records": "../other/records.csv"}, "kmeans-records="),
        ({"kmeans-public-corpus": ""}, "kmeans-public-corpus=''"),
        ({"aggregation": "secaggplus", "dp-noise-shares": 0}, "aggregation='secaggplus'"),
        ({"min-nodes": 2}, "min-nodes=2"),
    ],
)
def test_a_bad_kmeans_key_is_an_error_naming_it(change: dict[str, object], named: str) -> None:
    with pytest.raises(FedembedError) as caught:
        FederationConfig.from_run_config({**VALID, **change})
    assert named in str(caught.value)


def test_the_kmeans_settings_record_round_trips_and_refuses_extra_keys() -> None:
    settings = KMeansSettings(k=4, records="records.csv", text_column="text", count_weight=0.3)

    assert KMeansSettings.from_record(settings.to_record()) == settings
    with pytest.raises(FedembedError, match="keys"):
        KMeansSettings.from_record({**settings.to_record(), "path": "/etc/passwd"})
    with pytest.raises(FedembedError, match="invalid"):
        KMeansSettings.from_record({**settings.to_record(), "records": "../x.csv"})
