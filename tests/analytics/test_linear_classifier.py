"""The linear head: same objective as scikit-learn's LogisticRegression, saved and loaded."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression

from analytics.linear_classifier import CLASSIFIER_MANIFEST, CLASSIFIER_WEIGHTS, LinearClassifier
from embedding_core.errors import FedembedError

TIGHT = 1e-9


def _blobs(
    n: int, classes: int, dim: int, *, seed: int, spread: float = 1.2
) -> tuple[NDArray[np.float64], list[str]]:
    """Unit vectors around ``classes`` random centres, overlapping (not separable)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    which = rng.integers(0, classes, n)
    x = centres[which] + spread * rng.normal(size=(n, dim))
    return x / np.linalg.norm(x, axis=1, keepdims=True), [f"class-{c:02d}" for c in which]


@pytest.mark.parametrize("c", [0.3, 10.0])
def test_multiclass_fit_equals_scikit_learn_at_the_same_c(c: float) -> None:
    # Prepare
    x, y = _blobs(400, 5, 16, seed=0)
    test, _ = _blobs(200, 5, 16, seed=1)
    # Execute
    ours = LinearClassifier(c=c, tol=TIGHT).fit(x, y)
    reference = LogisticRegression(C=c, tol=TIGHT, max_iter=10_000).fit(x, y)
    # Assert
    assert ours.converged
    assert ours.classes == list(reference.classes_)
    scale = np.abs(reference.coef_).max()
    assert np.abs(ours.coef - reference.coef_).max() < 1e-4 * scale
    assert np.abs(ours.intercept - reference.intercept_).max() < 1e-4 * scale
    assert ours.predict(test) == list(reference.predict(test))
    assert np.abs(ours.predict_proba(test) - reference.predict_proba(test)).max() < 1e-5


def test_binary_fit_equals_scikit_learn_binary_logistic_regression() -> None:
    # Prepare
    x, y = _blobs(300, 2, 12, seed=2)
    test, _ = _blobs(100, 2, 12, seed=3)
    # Execute
    ours = LinearClassifier(c=2.0, tol=TIGHT).fit(x, y)
    reference = LogisticRegression(C=2.0, tol=TIGHT, max_iter=10_000).fit(x, y)
    # Assert: scikit-learn's one weight vector is the difference of the two rows
    scale = np.abs(reference.coef_).max()
    assert np.abs((ours.coef[1] - ours.coef[0]) - reference.coef_[0]).max() < 1e-4 * scale
    assert np.abs(ours.predict_proba(test) - reference.predict_proba(test)).max() < 1e-5
    assert ours.predict(test) == list(reference.predict(test))


def test_float32_vectors_give_the_float64_model_within_solver_tolerance() -> None:
    x, y = _blobs(300, 4, 16, seed=4)

    wide = LinearClassifier(c=5.0).fit(x, y)
    narrow = LinearClassifier(c=5.0).fit(x.astype(np.float32), y)

    assert np.abs(wide.coef - narrow.coef).max() < 1e-2 * np.abs(wide.coef).max()
    assert np.mean(np.array(wide.predict(x)) == np.array(narrow.predict(x))) > 0.98


def test_warm_start_reaches_the_same_optimum_in_fewer_iterations() -> None:
    x, y = _blobs(400, 5, 16, seed=5)
    previous = LinearClassifier(c=3.0, tol=TIGHT).fit(x, y)

    cold = LinearClassifier(c=10.0, tol=TIGHT).fit(x, y)
    warm = LinearClassifier(c=10.0, tol=TIGHT).fit(x, y, warm_start=previous)

    assert warm.n_iter < cold.n_iter
    assert np.abs(warm.coef - cold.coef).max() < 1e-4 * np.abs(cold.coef).max()


def test_probabilities_are_a_distribution_in_class_order() -> None:
    x, y = _blobs(200, 3, 8, seed=6)

    model = LinearClassifier().fit(x, y)
    proba = model.predict_proba(x[:20])

    assert proba.shape == (20, 3)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert model.predict(x[:20]) == [model.classes[i] for i in proba.argmax(axis=1)]


def test_saved_classifier_loads_with_the_same_predictions(tmp_path: Path) -> None:
    # Prepare
    x, y = _blobs(200, 3, 8, seed=7)
    model = LinearClassifier(c=4.0).fit(x, y)
    # Execute
    model.save(tmp_path / "clf", extras={"encoder": {"encoder_space": "abc"}})
    loaded = LinearClassifier.load(tmp_path / "clf")
    # Assert
    assert loaded.classes == model.classes
    assert loaded.c == 4.0
    assert np.array_equal(loaded.predict_proba(x), model.predict_proba(x))
    manifest = json.loads((tmp_path / "clf" / CLASSIFIER_MANIFEST).read_text())
    assert manifest["encoder"] == {"encoder_space": "abc"}
    assert loaded.manifest["weights_sha256"] == manifest["weights_sha256"]


def test_loading_refuses_weights_that_fail_their_sha256(tmp_path: Path) -> None:
    x, y = _blobs(100, 3, 8, seed=8)
    LinearClassifier().fit(x, y).save(tmp_path)
    other = LinearClassifier().fit(x[:60], y[:60])
    other.save(tmp_path / "other")
    (tmp_path / CLASSIFIER_WEIGHTS).write_bytes(
        (tmp_path / "other" / CLASSIFIER_WEIGHTS).read_bytes()
    )

    with pytest.raises(FedembedError, match="SHA-256"):
        LinearClassifier.load(tmp_path)


def test_loading_a_folder_without_a_classifier_names_the_flag(tmp_path: Path) -> None:
    with pytest.raises(FedembedError, match="--classifier"):
        LinearClassifier.load(tmp_path)


def test_one_class_and_wrong_width_are_refused_clearly() -> None:
    x, y = _blobs(50, 2, 8, seed=9)

    with pytest.raises(FedembedError, match="one class only"):
        LinearClassifier().fit(x, ["same"] * len(y))
    model = LinearClassifier().fit(x, y)
    with pytest.raises(FedembedError, match="width 8"):
        model.predict(np.zeros((2, 9)))
    with pytest.raises(FedembedError, match="positive"):
        LinearClassifier(c=0.0)
