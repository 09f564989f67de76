"""The classifier run-config keys: their checks, and the record every classifier round carries."""

from __future__ import annotations

import pytest

from embedding_core.errors import FedembedError
from federation.classifier_settings import (
    ClassifierSettings,
    classifier_round_settings,
    parse_labels,
)
from federation.run_config import FederationConfig

VALID = {
    "task": "classifier",
    "classifier-labels": "card_arrival, exchange_rate,top_up_failed",
    "classifier-rounds": "20",
    "classifier-epsilon": 8,
    "classifier-label-column": "category",
    "aggregation": "ckks",
    "coordinator-kit": "/kits/coordinator",
    "dp-noise-shares": 3,
    "min-nodes": 3,
    "run-tag": "head-1",
}


def test_a_classifier_run_config_is_read_with_its_keys() -> None:
    config = FederationConfig.from_run_config(VALID)

    assert (config.task, config.classifier_rounds, config.classifier_epsilon) == (
        "classifier",
        20,
        8.0,
    )
    assert parse_labels(config.classifier_labels) == (
        "card_arrival",
        "exchange_rate",
        "top_up_failed",
    )
    assert (config.classifier_records, config.classifier_clip) == ("records.csv", 1.0)
    settings = classifier_round_settings(config, config.round_settings())
    assert (settings.target_epsilon, settings.num_server_rounds) == (8.0, 20)
    assert (settings.dp_noise_shares, settings.run_tag) == (3, "head-1")


def test_other_tasks_ignore_the_classifier_keys() -> None:
    config = FederationConfig.from_run_config({"coordinator-kit": "/kits/c"})

    assert config.task == "train"
    assert config.classifier_labels == ""


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"task": "classify"}, "task='classify'"),
        ({"classifier-labels": ""}, "classifier-labels=''"),
        ({"classifier-labels": "a"}, "classifier-labels='a'"),
        ({"classifier-labels": "a,b,a"}, "classifier-labels='a,b,a'"),
        ({"classifier-rounds": 0}, "classifier-rounds=0"),
        ({"classifier-epsilon": 0.0}, "classifier-epsilon=0.0"),
        ({"classifier-clip": -1.0}, "classifier-clip=-1.0"),
        ({"classifier-learning-rate": 0.0}, "classifier-learning-rate=0.0"),
        ({"classifier-records": "../other/records.csv"}, "classifier-records="),
        ({"classifier-label-column": ""}, "classifier-label-column=''"),
        ({"aggregation": "secaggplus", "dp-noise-shares": 0}, "aggregation='secaggplus'"),
        ({"min-nodes": 2}, "min-nodes=2"),
    ],
)
def test_a_bad_classifier_key_is_an_error_naming_it(change: dict[str, object], named: str) -> None:
    with pytest.raises(FedembedError) as caught:
        FederationConfig.from_run_config({**VALID, **change})
    assert named in str(caught.value)


def test_the_classifier_settings_record_round_trips_and_refuses_extra_keys() -> None:
    settings = ClassifierSettings(
        labels=("a", "b"),
        records="records.csv",
        text_column="text",
        label_column="label",
        clip=1.0,
        count_weight=0.3,
    )

    assert ClassifierSettings.from_record(settings.to_record()) == settings
    with pytest.raises(FedembedError, match="keys"):
        ClassifierSettings.from_record({**settings.to_record(), "path": "/etc/passwd"})
    with pytest.raises(FedembedError, match="invalid"):
        ClassifierSettings.from_record({**settings.to_record(), "records": "../x.csv"})
    with pytest.raises(FedembedError, match="invalid"):
        ClassifierSettings.from_record({**settings.to_record(), "clip": 0.0})
