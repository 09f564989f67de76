"""The ONNX Runtime backends: same vectors as torch (fp32), close ones (int8), cached export."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from embedding_core.encoder import ENCODER_BACKENDS, Encoder, check_backend
from embedding_core.onnx_encoder import ONNX_BATCH_TOKENS_ENV
from embedding_core.onnx_export import INT8_SETTINGS, file_sha256

TEXTS = [
    "A man is playing a guitar.",
    "Someone plays the guitar on a stage.",
    "Stocks fell sharply after the report.",
    "The patient was discharged after three days.",
    "Insurance claims are reviewed within ten working days.",
    "Aspirin lowers the risk of a second heart attack in some patients.",
    "x",
    # longer than max_seq_length (256 tokens): truncation must match torch's
    " ".join(f"Sentence {i} of a long clinical abstract about cell biology." for i in range(60)),
]


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_onnx_fp32_vectors_equal_torch_vectors(encoder: Encoder, onnx_encoder: Encoder) -> None:
    # Execute
    reference = encoder.encode(TEXTS)
    vectors = onnx_encoder.encode(TEXTS)
    # Assert
    assert vectors.shape == reference.shape
    assert vectors.dtype == np.float32
    assert _cosines(vectors, reference).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_int8_vectors_stay_close_to_torch_vectors(encoder: Encoder, int8_encoder: Encoder) -> None:
    # Execute
    cosines = _cosines(int8_encoder.encode(TEXTS), encoder.encode(TEXTS))
    # Assert: measured mean 0.99, min 0.97 on STS-B test sentences (per-channel int8)
    assert cosines.mean() >= 0.97
    assert cosines.min() >= 0.90
    assert cosines.min() < 0.99999  # really quantised, not the fp32 graph


def test_int8_keeps_the_meaning(int8_encoder: Encoder) -> None:
    vectors = int8_encoder.encode(TEXTS[:3])

    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 2] + 0.3


def test_onnx_batch_size_and_order_do_not_change_vectors(onnx_encoder: Encoder) -> None:
    one = onnx_encoder.encode(TEXTS, batch_size=1)
    many = onnx_encoder.encode(TEXTS[::-1], batch_size=64)[::-1]

    np.testing.assert_allclose(one, many, atol=1e-5)


def test_a_token_budget_of_one_text_a_batch_gives_the_same_vectors(
    onnx_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the default budget (1,024 tokens: all eight texts in one or two batches)
    batched = onnx_encoder.encode(TEXTS)
    # Execute: a budget smaller than any text, so every batch holds one text
    monkeypatch.setenv(ONNX_BATCH_TOKENS_ENV, "1")
    alone = onnx_encoder.encode(TEXTS)
    # Assert
    np.testing.assert_allclose(alone, batched, atol=1e-5)


def test_the_export_traces_eager_attention_not_sdpas_nan_guard(
    onnx_encoder: Encoder, onnx_dir: Path
) -> None:
    # Prepare
    import onnx

    onnx_encoder.encode(TEXTS[:1])
    (path,) = onnx_dir.glob("*/model.onnx")
    # Execute
    ops = {node.op_type for node in onnx.load(str(path), load_external_data=False).graph.node}
    # Assert: SDPA's trace guards the scores with IsNaN + Where (a third of the time on
    # 256-token documents); eager attention is MatMul + Softmax
    assert "Softmax" in ops
    assert "IsNaN" not in ops


def test_int8_weights_stay_within_seven_bits_so_no_cpu_saturates_them(
    int8_encoder: Encoder, onnx_dir: Path
) -> None:
    # Prepare
    import onnx
    from onnx import numpy_helper

    int8_encoder.encode(TEXTS[:1])
    (path,) = onnx_dir.glob("*/model-int8.onnx")
    # Execute
    int8 = [
        numpy_helper.to_array(tensor)
        for tensor in onnx.load(str(path)).graph.initializer
        if tensor.data_type == onnx.TensorProto.INT8
    ]
    weights = [w for w in int8 if w.ndim == 2]  # the rest are per-channel zero points
    # Assert: every matrix product of the 6 layers is quantised (Q, K, V, output and the
    # two feed-forward ones), with weights in -64..64: without VNNI, ONNX Runtime adds
    # uint8 x int8 products in pairs into int16, where 8-bit weights saturate
    # (SciFact nDCG@10 63.77 against 65.12 with 7 bits on an AVX2-only CPU)
    assert len(weights) == 36
    assert min(int(w.min()) for w in weights) >= -64
    assert max(int(w.max()) for w in weights) <= 64


def test_the_int8_space_changes_with_the_quantisation_settings(
    int8_encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare
    before = int8_encoder.space
    # Execute: vectors quantised otherwise are vectors of another space
    monkeypatch.setitem(INT8_SETTINGS, "reduce_range", False)
    after = int8_encoder.space
    # Assert
    assert after != before


def test_backends_share_the_model_fingerprint_not_the_vector_space(
    encoder: Encoder, onnx_encoder: Encoder, int8_encoder: Encoder
) -> None:
    encoders = [encoder, onnx_encoder, int8_encoder]

    assert len({e.fingerprint for e in encoders}) == 1
    assert len({e.space for e in encoders}) == 3
    assert [e.backend for e in encoders] == list(ENCODER_BACKENDS)
    assert encoder.space_for(normalize=False) != encoder.space


def test_load_is_lazy_and_reads_static_facts_from_the_folder(tmp_path: Path) -> None:
    # Execute
    lazy = Encoder.load(backend="onnx-int8", onnx_dir=tmp_path / "onnx")
    facts = (lazy.dimension, lazy.max_seq_length, len(lazy.fingerprint), len(lazy.space))
    vocab = lazy.tokenizer.get_vocab()
    # Assert: nothing exported, no model loaded
    assert facts == (384, 256, 64, 64)
    assert "[CLS]" in vocab
    assert not (tmp_path / "onnx").exists()
    assert lazy._model is None
    assert lazy._onnx is None


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown encoder backend") as info:
        check_backend("onnx-int4")
    message = str(info.value)
    assert "onnx-int4" in message
    assert all(name in message for name in ENCODER_BACKENDS)
    with pytest.raises(ValueError, match="onnx-int4"):
        Encoder.load(backend="onnx-int4")


@pytest.mark.parametrize("damage", ["bytes", "other model"])
def test_a_damaged_or_foreign_export_is_made_again_never_used(
    int8_encoder: Encoder,
    onnx_dir: Path,
    tmp_path: Path,
    damage: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare: a copy of the session's export cache with the int8 file damaged
    expected = int8_encoder.encode(TEXTS[:3])
    folder = tmp_path / "onnx"
    shutil.copytree(onnx_dir, folder)
    (int8,) = folder.glob("*/model-int8.onnx")
    sidecar = int8.with_suffix(".json")
    if damage == "bytes":
        int8.write_bytes(int8.read_bytes()[:1000])
    else:
        record = json.loads(sidecar.read_text())
        sidecar.write_text(json.dumps({**record, "fingerprint": "0" * 64}))
    # Execute
    caplog.set_level(logging.INFO)
    vectors = Encoder.load(backend="onnx-int8", onnx_dir=folder).encode(TEXTS[:3])
    # Assert: made again, and onnxruntime's per-tensor root-logger lines stayed off
    assert any("quantising" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.name == "root"]
    record = json.loads(sidecar.read_text())
    assert record["sha256"] == file_sha256(int8)
    assert record["fingerprint"] == int8_encoder.fingerprint
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_onnx_encoding_with_a_warm_export_never_imports_torch(
    int8_encoder: Encoder, onnx_dir: Path
) -> None:
    # Prepare: the export exists
    int8_encoder.encode(TEXTS[:1])
    code = (
        "import sys; from embedding_core.encoder import Encoder; "
        "v = Encoder.load(backend='onnx-int8').encode(['a warm cache']); "
        "print(v.shape, 'torch' in sys.modules, 'sentence_transformers' in sys.modules)"
    )
    env = {**os.environ, "FEDEMBED_ONNX_DIR": str(onnx_dir), "HF_HUB_OFFLINE": "1"}
    # Execute
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    # Assert
    assert done.stdout.split("\n")[0] == "(1, 384) False False"
