"""One-off, cached ONNX export (and int8 quantisation) of a sentence-transformers model.

The model's transformer (the network up to its token embeddings; pooling and
normalisation run in numpy, read from the model's own module configs) is exported with
``torch.onnx`` (the TorchScript exporter, eager attention, dynamic batch and sequence
axes), offline, into the ONNX cache folder beside the embedding cache::

    <onnx dir>/<fingerprint[:16]>/model.onnx        fp32 export
    <onnx dir>/<fingerprint[:16]>/model.json        its sidecar
    <onnx dir>/<fingerprint[:16]>/model-int8.onnx   int8 dynamic quantisation of it
    <onnx dir>/<fingerprint[:16]>/model-int8.json

A file is made once, under a file lock (several processes may start at once), written
beside its target and renamed into place; its sidecar records the source model's
fingerprint, the export settings and the file's SHA-256. A file whose sidecar is
missing, names another model or settings, or whose hash differs is made again, never
used. torch is imported only here, only when a file must be made.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

from filelock import FileLock

from embedding_core.atomic_file import atomic_write_json

__all__ = ["EXPORT_SETTINGS", "INT8_SETTINGS", "exported_model", "file_sha256", "int8_settings_id"]

logger = logging.getLogger(__name__)

_FORMAT = 1
EXPORT_SETTINGS: dict[str, Any] = {"exporter": "torchscript", "opset": 17, "attention": "eager"}
INT8_SETTINGS: dict[str, Any] = {
    "weight_type": "QInt8",
    "per_channel": True,
    # 7-bit weights: on CPUs without VNNI (AVX2 only) ONNX Runtime multiplies uint8
    # activations by int8 weights two at a time into int16 (``vpmaddubsw``), which
    # saturates with 8-bit weights (255 x 127 x 2 > 32,767): SciFact nDCG@10 63.77 on an
    # AVX2-only AMD EPYC against 65.12 with weights in -64..64 (255 x 64 x 2 = 32,640),
    # where no pair saturates and the integer products are exact with or without VNNI
    "reduce_range": True,
    "op_types_to_quantize": ["MatMul"],
}
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
_OUTPUT_NAME = "token_embeddings"
_HASH_CHUNK = 1 << 20
_LOCK_TIMEOUT_S = 1800.0


def int8_settings_id() -> str:
    """A short id of the int8 quantisation settings (part of the ``onnx-int8`` space)."""
    material = json.dumps(INT8_SETTINGS, sort_keys=True).encode()
    return hashlib.sha256(material).hexdigest()[:16]


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(target: Path) -> Path:
    return target.with_suffix(".json")


def _expected(fingerprint: str, quantized: bool) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "fingerprint": fingerprint,
        "variant": "onnx-int8" if quantized else "onnx",
        "export": EXPORT_SETTINGS,
        "int8": INT8_SETTINGS if quantized else None,
    }


def _is_valid(target: Path, expected: dict[str, Any]) -> bool:
    """Whether ``target`` exists and its sidecar vouches for it (settings and hash)."""
    try:
        record = json.loads(_sidecar(target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(record, dict) or not target.is_file():
        return False
    if any(record.get(key) != value for key, value in expected.items()):
        logger.warning("onnx: %s was made for another model or settings; remaking", target.name)
        return False
    if record.get("sha256") != file_sha256(target):
        logger.warning("onnx: %s does not match its recorded SHA-256; remaking", target.name)
        return False
    return True


def exported_model(
    model_dir: Path, *, fingerprint: str, quantized: bool, cache_dir: Path
) -> tuple[Path, list[str]]:
    """The cached ONNX file of ``model_dir`` (made first if needed) and its input names.

    Args:
        model_dir: The local sentence-transformers model folder.
        fingerprint: The encoder's fingerprint of that folder (names the cache entry).
        quantized: The int8 dynamically quantised variant instead of fp32.
        cache_dir: The ONNX cache folder.
    """
    folder = cache_dir / fingerprint[:16]
    target = folder / ("model-int8.onnx" if quantized else "model.onnx")
    expected = _expected(fingerprint, quantized)
    if not _is_valid(target, expected):
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(str(target.with_suffix(".lock")), timeout=_LOCK_TIMEOUT_S):
            if not _is_valid(target, expected):  # another process may have made it
                _make(model_dir, target, expected, fingerprint=fingerprint, cache_dir=cache_dir)
    record = json.loads(_sidecar(target).read_text(encoding="utf-8"))
    return target, list(record["inputs"])


def _make(
    model_dir: Path, target: Path, expected: dict[str, Any], *, fingerprint: str, cache_dir: Path
) -> None:
    started = time.perf_counter()
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.stem, suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        if expected["int8"] is not None:
            source, inputs = exported_model(
                model_dir, fingerprint=fingerprint, quantized=False, cache_dir=cache_dir
            )
            _quantize(source, tmp)
        else:
            inputs = _export(model_dir, tmp)
        sha256 = file_sha256(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    atomic_write_json(_sidecar(target), {**expected, "inputs": inputs, "sha256": sha256})
    logger.info(
        "onnx: made %s in %.1fs (%d MB)",
        target.name,
        time.perf_counter() - started,
        target.stat().st_size >> 20,
    )


def _export(model_dir: Path, out: Path) -> list[str]:
    """Export the model's transformer to ``out``; returns the graph's input names."""
    import torch
    from sentence_transformers import SentenceTransformer

    logger.info("onnx: exporting %s (once; cached)", model_dir.name)
    # Eager attention: the SDPA path traces into a NaN guard (IsNaN + Where over the
    # batch x heads x length x length scores) that took a third of ONNX Runtime's time
    # on 256-token documents; eager attention exports as plain MatMul + Softmax.
    model = SentenceTransformer(
        str(model_dir),
        device="cpu",
        local_files_only=True,
        model_kwargs={"attn_implementation": "eager"},
    )
    network: Any = model[0].auto_model
    network.eval()
    accepted = set(inspect.signature(network.forward).parameters)
    inputs = [name for name in _INPUT_NAMES if name in accepted]

    class TokenEmbeddings(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            out = self.inner(**dict(zip(inputs, args, strict=True)), return_dict=True)
            return out.last_hidden_state  # type: ignore[no-any-return]

    ids = torch.tensor([[101, 2023, 2003, 1037, 3231, 102], [101, 2023, 102, 0, 0, 0]])
    ids = ids.clamp(max=int(network.config.vocab_size) - 1)
    mask = (ids != 0).long()
    example = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    axes = {name: {0: "batch", 1: "sequence"} for name in [*inputs, _OUTPUT_NAME]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on traced constants
        torch.onnx.export(
            TokenEmbeddings(network),
            tuple(example[name] for name in inputs),
            str(out),
            input_names=inputs,
            output_names=[_OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=int(EXPORT_SETTINGS["opset"]),
            dynamo=False,
        )
    return inputs


def _quantize(source: Path, out: Path) -> None:
    """Int8 dynamic quantisation of ``source`` into ``out`` (settings: INT8_SETTINGS)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logger.info("onnx: quantising %s to int8 (once; cached)", source.name)
    # onnxruntime's quantiser logs a line per tensor on the root logger: keep them off
    # the console (our own line above says what happens).
    quiet = _DropRootRecords()
    handlers = logging.getLogger().handlers
    for handler in handlers:
        handler.addFilter(quiet)
    try:
        quantize_dynamic(
            str(source),
            str(out),
            weight_type=getattr(QuantType, str(INT8_SETTINGS["weight_type"])),
            per_channel=bool(INT8_SETTINGS["per_channel"]),
            reduce_range=bool(INT8_SETTINGS["reduce_range"]),
            op_types_to_quantize=list(INT8_SETTINGS["op_types_to_quantize"]),
        )
    finally:
        for handler in handlers:
            handler.removeFilter(quiet)


class _DropRootRecords(logging.Filter):
    """Drops the records logged on the root logger itself (a library's ``logging.info``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != "root"
