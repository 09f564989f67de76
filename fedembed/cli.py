"""The ``fedembed`` command: one subcommand group per component.

Each component's commands are imported when they are run (or listed by ``--help``),
not when the ``fedembed`` command starts: ``fedembed node start`` does not load the
index, the audit or the coordinator, and ``import fedembed.cli`` loads none of torch,
TenSEAL or Flower (``tests/fedembed/test_cli_imports.py``).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Annotated, Any

import click
import typer
from typer.core import TyperGroup

from embedding_core.app_logging import configure_logging
from embedding_core.errors import FedembedError
from embedding_core.version import PRODUCT_VERSION

__all__ = ["COMMANDS", "app", "main"]

# Subcommand -> "module:attribute" of its Typer group or command function, in --help order.
COMMANDS: dict[str, str] = {
    "eval": "embedding_core.cli:eval_app",
    "data": "embedding_core.cli:data_app",
    "model": "embedding_core.cli:model_app",
    "node": "client_node.cli:node_app",
    "coordinator": "coordinator.cli:coordinator_app",
    "index": "secure_index.cli:index_app",
    "partner": "secure_index.cli:partner_app",
    "policy": "policies.cli:policy_app",
    "audit": "audit.cli:audit_app",
    "demo": "fedembed.demo:demo",
}


def _command(name: str) -> click.Command:
    """Import subcommand ``name`` and build its click command."""
    module, attribute = COMMANDS[name].split(":")
    target: Any = getattr(importlib.import_module(module), attribute)
    command: click.Command
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)
    else:  # a command function: a one-command Typer gives its click command
        single = typer.Typer()
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    _no_second_suggestion(command)
    return command


def _no_second_suggestion(command: click.Command) -> None:
    """Click suggests a command for a typo already; Typer's own suggestion stays off."""
    if isinstance(command, TyperGroup):
        command.suggest_commands = False
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            _no_second_suggestion(sub)


class _LazyGroup(TyperGroup):
    """The root group: subcommands from :data:`COMMANDS`, imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *COMMANDS]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            return _command(cmd_name)
        return super().get_command(ctx, cmd_name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand as exc:  # suggest among the lazy ones too
            raise click.exceptions.NoSuchCommand(
                exc.command_name, possibilities=[*self.commands, *COMMANDS], ctx=ctx
            ) from None


app = typer.Typer(
    cls=_LazyGroup,
    name="fedembed",
    help="Privacy-preserving federated embeddings: train, index, query and audit.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    suggest_commands=False,  # click already suggests a command for a typo
)


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
