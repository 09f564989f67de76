"""The options every ``fedembed node analyse`` command shares, and how results print."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from client_node.analysis.record_vectors import RecordEncoder

__all__ = [
    "IdColumnOpt",
    "InputOpt",
    "LabelColumnOpt",
    "OutOpt",
    "SeedOpt",
    "TextColumnOpt",
    "emit",
    "input_exists",
    "option_given",
    "record_encoder",
]


def input_exists(value: Path) -> Path:
    """``--input``: an existing file."""
    if not value.is_file():
        state = "is a folder" if value.is_dir() else "does not exist"
        raise typer.BadParameter(
            f"{value} {state}: expected a records file (.jsonl, .csv, .tsv or .parquet) "
            "with one record a line and a text column (--text-column)"
        )
    return value


InputOpt = Annotated[
    Path,
    typer.Option(
        "--input",
        callback=input_exists,
        help="The node's records: a .jsonl, .csv, .tsv or .parquet file, one record a "
        "line, with a text column (and a label column where the command needs one).",
    ),
]
TextColumnOpt = Annotated[
    str, typer.Option("--text-column", help="The column holding each record's text.")
]
LabelColumnOpt = Annotated[
    str | None,
    typer.Option("--label-column", help="The column holding each record's class."),
]
IdColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--id-column",
        help="The column holding each record's unique id (default: its line number).",
    ),
]
OutOpt = Annotated[
    Path | None,
    typer.Option("--out", help="Folder for what the command writes (made if missing)."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed of every random choice.")]


def option_given(ctx: typer.Context, name: str) -> bool:
    """Whether the user set option ``name`` (on the command line or in the environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source not in {
        click.core.ParameterSource.DEFAULT,
        click.core.ParameterSource.DEFAULT_MAP,
    }


def record_encoder(
    model: Path | None, encoder_backend: str, adapter: Path | None, cache_dir: Path | None
) -> RecordEncoder:
    """The :class:`RecordEncoder` the command-line options name."""
    return RecordEncoder(
        model=model, encoder_backend=encoder_backend, adapter=adapter, cache_dir=cache_dir
    )


def emit(lines: list[str], result: dict[str, Any], *, as_json: bool) -> None:
    """Print the human summary, then (``--json``) the result as one JSON line, last."""
    for line in lines:
        typer.echo(line)
    if as_json:
        typer.echo(json.dumps(result, sort_keys=True))
