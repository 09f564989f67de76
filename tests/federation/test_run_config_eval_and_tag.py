"""The run config's central evaluation set and run tag."""

from __future__ import annotations

import pytest

from embedding_core.errors import FedembedError
from federation.run_config import NO_EVALUATION, FederationConfig

BASE = {"coordinator-kit": "kit"}


def test_eval_dataset_none_skips_the_evaluation_and_other_names_are_dataset_folders() -> None:
    assert FederationConfig.from_run_config({**BASE, "eval-dataset": "none"}).eval_dataset == (
        NO_EVALUATION
    )
    assert FederationConfig.from_run_config({**BASE, "eval-dataset": "nfcorpus"}).eval_dataset == (
        "nfcorpus"
    )


@pytest.mark.parametrize("name", ["../scifact", "/data/scifact", "", "sci fact"])
def test_an_eval_dataset_that_is_not_a_folder_name_is_refused_by_its_key(name: str) -> None:
    with pytest.raises(FedembedError) as caught:
        FederationConfig.from_run_config({**BASE, "eval-dataset": name})

    assert "eval-dataset" in caught.value.problem
    assert "none" in caught.value.expected


def test_an_empty_run_tag_becomes_the_flower_run_id_and_a_given_one_is_kept() -> None:
    untagged = FederationConfig.from_run_config(BASE)
    tagged = FederationConfig.from_run_config({**BASE, "run-tag": "trial-3"})

    assert untagged.run_tag == ""
    assert untagged.with_run_tag(4242).run_tag == "flwr-4242"
    assert untagged.with_run_tag(4242).round_settings().run_tag == "flwr-4242"
    assert tagged.with_run_tag(4242).run_tag == "trial-3"


@pytest.mark.parametrize("tag", ["-x", "a b", "x" * 129, "tag/../x"])
def test_a_malformed_run_tag_is_refused_by_its_key(tag: str) -> None:
    with pytest.raises(FedembedError, match="run-tag"):
        FederationConfig.from_run_config({**BASE, "run-tag": tag})
