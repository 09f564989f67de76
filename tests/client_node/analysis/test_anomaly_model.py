"""The anomaly detector the node saves: fit, calibrate, flag, explain, save and load."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from client_node.analysis.anomalies import is_anomaly_from_labels, score_records
from client_node.analysis.anomaly_model import DETECTORS, AnomalyModel, fit_anomaly_model
from embedding_core.errors import FedembedError

ENCODER = {"encoder_space": "space-a", "adapter_sha256": None, "model_id": "m"}


def _clusters(n: int, seed: int, first: int = 0) -> tuple[NDArray[np.float32], list[str]]:
    centres = np.random.default_rng(42).normal(size=(6, 24))
    rng = np.random.default_rng(seed)
    which = rng.integers(first, first + 3, n)
    x = centres[which] + 0.5 * rng.normal(size=(n, 24))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), [
        f"c{c}" for c in which
    ]


@pytest.mark.parametrize("detector", DETECTORS)
def test_new_classes_are_flagged_and_explained_by_normal_neighbours(detector: str) -> None:
    # Prepare: normal records from clusters 0-2; new records from clusters 0-5
    normal, labels = _clusters(300, seed=0)
    new, new_labels = _clusters(200, seed=1, first=0)
    odd, odd_labels = _clusters(100, seed=2, first=3)
    vectors = np.vstack([new, odd])
    truth = is_anomaly_from_labels(new_labels + odd_labels, labels)
    ids = [f"n{i}" for i in range(300)]
    # Execute
    model = fit_anomaly_model(normal, ids, labels=labels, detector=detector, k=5, encoder=ENCODER)
    report = score_records(model, vectors, [str(i) for i in range(300)], is_anomaly=truth)
    # Assert
    assert sum(truth) == 100
    assert report.result["auroc"] > 0.95
    assert report.result["detection_rate"] > 0.8
    assert report.result["fpr_at_threshold"] < 0.15
    explained = model.explain(vectors[:3])
    assert all(len(row) == 5 for row in explained)
    sims = [s for _, s in explained[0]]
    assert sims == sorted(sims, reverse=True)
    assert {i for i, _ in explained[0]} <= set(ids)


@pytest.mark.parametrize("detector", DETECTORS)
def test_saved_detector_loads_with_the_same_scores_and_threshold(
    tmp_path: Path, detector: str
) -> None:
    normal, labels = _clusters(120, seed=3)
    model = fit_anomaly_model(
        normal, [str(i) for i in range(120)], labels=labels, detector=detector, encoder=ENCODER
    )
    queries, _ = _clusters(10, seed=4)

    model.save(tmp_path)
    loaded = AnomalyModel.load(tmp_path, encoder=ENCODER)

    np.testing.assert_array_equal(loaded.score(queries), model.score(queries))  # exactly
    assert loaded.explain(queries) == model.explain(queries)
    assert loaded.threshold == model.threshold
    assert loaded.normal_ids == model.normal_ids
    assert loaded.normal_labels == ["c0", "c1", "c2"]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["encoder"] == ENCODER
    assert manifest["settings"]["calibration"] == "crossfit-5"


def test_the_command_offers_every_detector_the_api_has() -> None:
    from client_node.analysis.anomalies_options import DETECTOR_CHOICES

    assert DETECTOR_CHOICES == DETECTORS


def test_a_tampered_detector_file_is_refused(tmp_path: Path) -> None:
    normal, _ = _clusters(60, seed=5)
    fit_anomaly_model(normal, [str(i) for i in range(60)], k=3).save(tmp_path)
    data = bytearray((tmp_path / "detector.npz").read_bytes())
    data[-10] ^= 0xFF
    (tmp_path / "detector.npz").write_bytes(bytes(data))

    with pytest.raises(FedembedError, match="does not match the SHA-256"):
        AnomalyModel.load(tmp_path)


def test_vectors_of_another_encoder_space_are_refused(tmp_path: Path) -> None:
    normal, _ = _clusters(60, seed=6)
    fit_anomaly_model(normal, [str(i) for i in range(60)], k=3, encoder=ENCODER).save(tmp_path)

    with pytest.raises(FedembedError, match=r"another encoder.*--model/--encoder-backend"):
        AnomalyModel.load(tmp_path, encoder={**ENCODER, "encoder_space": "space-b"})
    with pytest.raises(FedembedError, match=r"another adapter.*--adapter"):
        AnomalyModel.load(tmp_path, encoder={**ENCODER, "adapter_sha256": "ab" * 32})


@pytest.mark.parametrize(
    ("n", "k", "rate", "message"),
    [
        (8, 10, 0.05, r"k=10 is larger than the normal set \(8 records\)"),
        (12, 10, 0.05, r"k=10 is larger than the 9 normal records .* at least 13 normal"),
        (30, 5, 0.01, r"too few to calibrate target_fpr=0.01.*at least 99 normal records"),
    ],
)
def test_a_normal_set_too_small_is_refused_before_any_work(
    n: int, k: int, rate: float, message: str
) -> None:
    normal, _ = _clusters(n, seed=7)

    with pytest.raises(FedembedError, match=message):
        fit_anomaly_model(normal, [str(i) for i in range(n)], k=k, target_fpr=rate)
