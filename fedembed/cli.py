"""The ``fedembed`` command: one subcommand group per component."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import click
import typer

from audit.cli import audit
from client_node.cli import node_app
from coordinator.cli import coordinator_app
from embedding_core.app_logging import configure_logging
from embedding_core.cli import data_app, eval_app, model_app
from embedding_core.errors import FedembedError
from embedding_core.version import PRODUCT_VERSION
from fedembed.demo import demo
from policies.cli import policy_app
from secure_index.cli import index_app, partner_app

__all__ = ["app", "main"]

app = typer.Typer(
    name="fedembed",
    help="Privacy-preserving federated embeddings: train, index, query and audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    suggest_commands=False,  # click already suggests a command for a typo
)

app.add_typer(eval_app, name="eval")
app.add_typer(data_app, name="data")
app.add_typer(model_app, name="model")
app.add_typer(node_app, name="node")
app.add_typer(coordinator_app, name="coordinator")
app.add_typer(index_app, name="index")
app.add_typer(partner_app, name="partner")
app.add_typer(policy_app, name="policy")
app.command("audit")(audit)
app.command("demo")(demo)


def _version(value: bool) -> None:
    if value:
        typer.echo(PRODUCT_VERSION)
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only.")] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Configure logging once for every subcommand."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    configure_logging(level, force=True)


def main() -> None:
    """Entry point: run the CLI, turning a user's mistake into a one-line error."""
    if os.environ.get("FEDEMBED_ALLOW_DOWNLOAD", "") not in {"1", "true", "yes"}:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        code = app(standalone_mode=False)
    except FedembedError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
