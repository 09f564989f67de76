"""CLI groups of the embedding kernel: ``fedembed eval``, ``fedembed data``, ``fedembed model``."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer

from embedding_core.cache import EmbeddingCache
from embedding_core.data import (
    load_beir,
    load_documents,
    load_stsb,
    resolve_dataset_dir,
)
from embedding_core.data.download import download_beir
from embedding_core.encoder import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_ENCODER_BACKEND,
    ENCODER_BACKENDS,
    Encoder,
)
from embedding_core.errors import DatasetNotFoundError, FedembedError

if TYPE_CHECKING:  # torch and scipy load only when a command needs them
    from embedding_core.adapter import Adapter

__all__ = ["EncoderBackendOpt", "data_app", "eval_app", "in_cli_words", "model_app"]

logger = logging.getLogger(__name__)

eval_app = typer.Typer(help="Evaluate the model (optionally with an adapter) on benchmarks.")
data_app = typer.Typer(help="Download and validate datasets.")
model_app = typer.Typer(help="Inspect the embedding model.")

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder holding the datasets (e.g. stsb/, scifact/); default $FEDEMBED_DATA_DIR.",
    ),
]
ModelOpt = Annotated[
    Path | None,
    typer.Option("--model", help="Local sentence-transformers model folder (default: bundled)."),
]
AdapterOpt = Annotated[
    Path | None, typer.Option("--adapter", help="Adapter folder to apply on top of the model.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON on the last line.")]
BatchOpt = Annotated[int, typer.Option("--batch-size", min=1, help="Texts per forward pass.")]
CacheOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="Embedding cache folder (default $FEDEMBED_CACHE_DIR)."),
]
NoCacheOpt = Annotated[
    bool,
    typer.Option("--no-cache", help="Encode every text again (no embedding cache; honest timing)."),
]
EncoderBackendOpt = Annotated[
    str,
    typer.Option(
        "--encoder-backend",
        click_type=click.Choice(ENCODER_BACKENDS),
        help=(
            "How texts are encoded: torch (PyTorch, fp32), onnx (ONNX Runtime, fp32, same "
            "vectors as torch) or onnx-int8 (ONNX Runtime, int8 weights: fastest, vectors "
            "close to but not equal to fp32; exported once and cached offline). Vectors of "
            "different backends are never mixed in a cache or an index."
        ),
        show_default=True,
    ),
]


def in_cli_words(error: FedembedError, words: Mapping[str, str]) -> FedembedError:
    """``error`` as a CLI command says it: each Python-API phrase replaced by its flag.

    Library errors name keyword arguments (``force=True``, ``out_dir``); a command
    translates them into its own options, e.g. ``{"force=True": "--force"}``, so that
    its output names only flags the user can type. Phrases are replaced in order.
    """

    def say(text: str) -> str:
        for phrase, flag in words.items():
            text = text.replace(phrase, flag)
        return text

    translated = FedembedError(say(error.problem), expected=say(error.expected), fix=say(error.fix))
    translated.__cause__ = error.__cause__
    return translated


def _emit(result: dict[str, float], *, as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(title)
    for name, value in result.items():
        typer.echo(f"  {name:<12} {value:.4f}")


def _load_adapter(path: Path | None) -> Adapter | None:
    from embedding_core.adapter import Adapter

    return Adapter.load(path) if path is not None else None


@eval_app.command("sts")
def eval_sts(
    data_dir: DataDirOpt = None,
    split: Annotated[str, typer.Option(help="train, dev or test.")] = "test",
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    batch_size: BatchOpt = DEFAULT_BATCH_SIZE,
    encoder_backend: EncoderBackendOpt = DEFAULT_ENCODER_BACKEND,
    cache_dir: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Spearman correlation (cosine) on the STS Benchmark."""
    pairs = load_stsb(
        resolve_dataset_dir(data_dir, "stsb", marker=f"stsb-{split}.jsonl"), split=split
    )
    from embedding_core.evaluation import evaluate_sts

    encoder = Encoder.load(model, backend=encoder_backend)
    result = evaluate_sts(
        encoder,
        pairs,
        adapter=_load_adapter(adapter),
        cache=None if no_cache else EmbeddingCache(cache_dir),
        batch_size=batch_size,
        what=f"encode stsb {split}",
    )
    _emit(result, as_json=as_json, title=f"STS-B {split} ({len(pairs)} pairs)")


@eval_app.command("beir")
def eval_beir(
    dataset: Annotated[str, typer.Option(help="BEIR dataset folder name, e.g. scifact.")],
    data_dir: DataDirOpt = None,
    split: Annotated[str, typer.Option(help="Qrels split to evaluate.")] = "test",
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    batch_size: BatchOpt = DEFAULT_BATCH_SIZE,
    encoder_backend: EncoderBackendOpt = DEFAULT_ENCODER_BACKEND,
    cache_dir: CacheOpt = None,
    no_cache: NoCacheOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """nDCG@10, recall@100 and MRR@10 on a BEIR dataset (exact search)."""
    data = load_beir(
        resolve_dataset_dir(data_dir, dataset, marker="corpus.jsonl"), split=split, name=dataset
    )
    from embedding_core.evaluation import evaluate_retrieval

    encoder = Encoder.load(model, backend=encoder_backend)
    cache = None if no_cache else EmbeddingCache(cache_dir)
    result = evaluate_retrieval(
        encoder, data, adapter=_load_adapter(adapter), cache=cache, batch_size=batch_size
    )
    _emit(result, as_json=as_json, title=f"{dataset} {split} ({len(data.qrels)} queries)")


@data_app.command("download")
def data_download(
    name: Annotated[str, typer.Argument(help="BEIR dataset name, e.g. scifact.")],
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where to put it.")],
    url: Annotated[str | None, typer.Option(help="Override the download URL.")] = None,
    md5: Annotated[str | None, typer.Option(help="Expected MD5 of the zip.")] = None,
    force: Annotated[bool, typer.Option(help="Download even if present.")] = False,
) -> None:
    """Download a BEIR dataset from its published URL (needs network access)."""
    folder = download_beir(name, data_dir, url=url, md5=md5, force=force)
    typer.echo(str(folder))


@data_app.command("validate")
def data_validate(
    path: Annotated[Path, typer.Argument(help="Dataset folder or documents file.")],
    kind: Annotated[str, typer.Option(help="beir, stsb or documents.")] = "documents",
    split: Annotated[str, typer.Option(help="Split for beir/stsb.")] = "test",
    id_column: Annotated[str, typer.Option(help="Id column (documents).")] = "id",
    text_column: Annotated[str, typer.Option(help="Text column (documents).")] = "text",
    file_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="jsonl, csv, tsv or parquet (documents; default: from the file's suffix).",
        ),
    ] = None,
) -> None:
    """Check a dataset or documents file; prints a summary or a precise error.

    PATH is a documents file (--kind documents), a BEIR dataset folder (--kind beir:
    corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) or an STS-B folder (--kind stsb).
    """
    if kind in {"beir", "stsb"} and not path.is_dir():
        raise DatasetNotFoundError(
            f"{path} {'is a file, not a folder' if path.exists() else 'does not exist'}",
            expected=f"the {kind} dataset folder as PATH",
            fix=f"pass the dataset's folder: `fedembed data validate DIR --kind {kind}`",
        )
    if kind == "beir":
        beir = load_beir(path, split=split)
        typer.echo(f"ok: {len(beir.corpus_ids)} documents, {len(beir.qrels)} {split} queries")
    elif kind == "stsb":
        typer.echo(f"ok: {len(load_stsb(path, split=split))} pairs")
    elif kind == "documents":
        docs = load_documents(
            path, id_column=id_column, text_column=text_column, file_format=file_format
        )
        typer.echo(f"ok: {len(docs)} documents")
    else:
        raise typer.BadParameter(f"unknown kind {kind!r}; expected beir, stsb or documents")


@model_app.command("info")
def model_info(
    model: ModelOpt = None, encoder_backend: EncoderBackendOpt = DEFAULT_ENCODER_BACKEND
) -> None:
    """Show the model's id, dimension, sequence length, fingerprint and vector space."""
    encoder = Encoder.load(model, backend=encoder_backend)
    typer.echo(
        json.dumps(
            {
                "model_id": encoder.model_id,
                "path": str(encoder.path),
                "dimension": encoder.dimension,
                "max_seq_length": encoder.max_seq_length,
                "fingerprint": encoder.fingerprint,
                "backend": encoder.backend,
                "space": encoder.space,
            }
        )
    )
