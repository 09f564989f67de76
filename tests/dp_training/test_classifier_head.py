"""A published classifier head: read back, predict, refuse what is not a head."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dp_training.classifier_head import ClassifierHead
from embedding_core.errors import FedembedError


def test_a_published_head_predicts_and_a_bad_file_is_a_clear_error(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "classifier_head.json"
    path.write_text(
        json.dumps({"labels": ["a", "b"], "weights": [[1.0, 0.0], [0.0, 1.0]], "bias": [0.0, 0.5]})
    )

    # Execute
    head = ClassifierHead.load(path)

    # Assert
    assert head.predict(np.array([[2.0, 0.0], [1.0, 1.0]])) == ["a", "b"]
    with pytest.raises(FedembedError, match="width 2"):
        head.predict(np.zeros((1, 3)))
    (tmp_path / "bad.json").write_text(json.dumps({"labels": ["a"]}))
    with pytest.raises(FedembedError, match="cannot read the classifier head"):
        ClassifierHead.load(tmp_path / "bad.json")
    (tmp_path / "flat.json").write_text(
        json.dumps({"labels": ["a", "b"], "weights": [1.0, 2.0], "bias": [0.0, 0.0]})
    )
    with pytest.raises(FedembedError, match="weights"):
        ClassifierHead.load(tmp_path / "flat.json")
