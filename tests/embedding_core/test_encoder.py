from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from embedding_core.encoder import DEFAULT_MODEL_ID, Encoder
from embedding_core.errors import ModelNotFoundError

TEXTS = [
    "The patient was discharged after three days.",
    "A loan application needs two forms of identification.",
    "Insurance claims are reviewed within ten working days.",
    "The weather is nice today.",
    "x",
]


def test_default_model_loads_offline(encoder: Encoder) -> None:
    assert encoder.model_id == DEFAULT_MODEL_ID
    assert encoder.dimension == 384
    assert encoder.max_seq_length == 256
    assert len(encoder.fingerprint) == 64


def test_encode_returns_normalised_float32(encoder: Encoder) -> None:
    vectors = encoder.encode(TEXTS)

    assert vectors.shape == (len(TEXTS), 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encode_unnormalised_has_same_direction(encoder: Encoder) -> None:
    # all-MiniLM-L6-v2 ends in a Normalize module, so only the direction is checked here.
    raw = encoder.encode(TEXTS, normalize=False)
    unit = encoder.encode(TEXTS)

    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), unit, atol=1e-5)


def test_batch_size_does_not_change_vectors(encoder: Encoder) -> None:
    one = encoder.encode(TEXTS, batch_size=1)
    many = encoder.encode(TEXTS, batch_size=64)

    np.testing.assert_allclose(one, many, atol=1e-5)


def test_order_is_kept_and_semantics_hold(encoder: Encoder) -> None:
    vectors = encoder.encode(
        ["A man is playing a guitar.", "Stocks fell sharply.", "Someone plays guitar."]
    )

    sims = vectors @ vectors.T
    assert sims[0, 2] > sims[0, 1] + 0.3


def test_empty_input_gives_empty_matrix(encoder: Encoder) -> None:
    assert encoder.encode([]).shape == (0, 384)


def test_single_string_is_rejected(encoder: Encoder) -> None:
    with pytest.raises(TypeError, match="sequence of texts"):
        encoder.encode("not a list")  # type: ignore[arg-type]


def test_missing_model_path_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"

    with pytest.raises(ModelNotFoundError) as info:
        Encoder.load(missing)

    message = str(info.value)
    assert str(missing) in message
    assert "does not exist" in message
    assert "Fix:" in message


def test_directory_without_model_files_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")

    with pytest.raises(ModelNotFoundError, match="not a sentence-transformers model"):
        Encoder.load(tmp_path)


def test_hub_name_needs_explicit_download_permission() -> None:
    with pytest.raises(ModelNotFoundError, match="FEDEMBED_ALLOW_DOWNLOAD"):
        Encoder.load("sentence-transformers/all-mpnet-base-v2", allow_download=False)


def test_explicit_local_path_equals_default(encoder: Encoder) -> None:
    assert encoder.path is not None
    other = Encoder.load(encoder.path, backend=encoder.backend)

    assert other.fingerprint == encoder.fingerprint
    np.testing.assert_allclose(other.encode(TEXTS[:2]), encoder.encode(TEXTS[:2]), atol=1e-6)


def test_fingerprint_depends_on_max_seq_length(encoder: Encoder) -> None:
    assert encoder.path is not None
    short = Encoder.load(encoder.path, max_seq_length=32)

    assert short.fingerprint != encoder.fingerprint


def test_progress_is_reported_in_log_lines_without_texts(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("FEDEMBED_PROGRESS", "log")

    with caplog.at_level(logging.INFO, logger="embedding_core.progress"):
        encoder.encode(TEXTS, show_progress=True, what="encode test texts")

    lines = [r.getMessage() for r in caplog.records if r.name == "embedding_core.progress"]
    assert lines[0] == f"encode test texts: started ({len(TEXTS)} texts)"
    assert lines[-1].startswith(f"encode test texts: done, {len(TEXTS)} texts in")
    assert not any(text in caplog.text for text in TEXTS[:4])
