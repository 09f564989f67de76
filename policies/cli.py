"""``fedembed policy``: validate, show and initialise policy files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel

from policies.errors import PolicyError
from policies.loader import LoadedPolicy, default_policy_path, load_policy
from policies.privacy_plan import plan_privacy

__all__ = ["EXIT_USAGE", "policy_app"]

EXIT_USAGE = 2

policy_app = typer.Typer(
    help="Declarative privacy, access and audit policies: validate, show, plan, init.",
    no_args_is_help=True,
)


def _load_or_exit(path: Path) -> LoadedPolicy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=EXIT_USAGE) from None


def _format_value(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_format_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


@policy_app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="The TOML policy file to check.")],
) -> None:
    """Check a policy file; print OK with its SHA-256, or what is wrong (exit 2)."""
    loaded = _load_or_exit(file)
    meta = loaded.policy.policy
    typer.echo(f"OK {loaded.path} policy {meta.name} {meta.version} sha256 {loaded.sha256}")


@policy_app.command("show")
def show(
    file: Annotated[
        Path | None, typer.Argument(help="Policy file (default: the shipped default).")
    ] = None,
) -> None:
    """Print a policy's rules and audit thresholds (the default policy if no FILE)."""
    loaded = _load_or_exit(file if file is not None else default_policy_path())
    policy = loaded.policy
    typer.echo(f"# {policy.policy.name} {policy.policy.version}: {policy.policy.description}")
    typer.echo(f"# {loaded.path}")
    typer.echo(f"# sha256 {loaded.sha256}")
    sections: dict[str, BaseModel] = {
        "privacy": policy.privacy,
        "access": policy.access,
        "audit": policy.audit,
    }
    for name, section in sections.items():
        typer.echo(f"\n[{name}]")
        for key, value in section.model_dump().items():
            typer.echo(f"{key} = {_format_value(value)}")


@policy_app.command("plan")
def plan(
    file: Annotated[
        Path | None, typer.Argument(help="Policy file (default: the shipped default).")
    ] = None,
    noise_shares: Annotated[
        int,
        typer.Option(
            "--noise-shares",
            min=0,
            help="The run's dp-noise-shares t (0: no distributed DP); sets what each "
            "observer other than a fellow member faces.",
        ),
    ] = 0,
) -> None:
    """Print the per-node epsilon to train with (the default policy if no FILE).

    That is the policy's budget, or less where its MIA limit needs it: the largest epsilon
    whose proven AUC bound is ``audit.max_mia_auc`` for the strictest observer the policy
    names (full-batch recipes). Prints the plan as JSON, then one line per named observer
    with the epsilon and MIA AUC bound it faces.
    """
    loaded = _load_or_exit(file if file is not None else default_policy_path())
    try:
        result = plan_privacy(loaded.policy, noise_shares=noise_shares)
    except PolicyError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=EXIT_USAGE) from None
    typer.echo(json.dumps({"policy": str(loaded.path), **result.to_dict()}))
    for bound in result.observers:
        typer.echo(
            f"# {bound.observer}: epsilon {bound.epsilon:.4f} (delta {result.delta:g}), "
            f"MIA AUC bound {bound.auc_bound:.4f}",
            err=True,
        )


@policy_app.command("init")
def init(
    out: Annotated[Path, typer.Argument(help="Where to write the policy file.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a copy of the documented default policy to OUT, ready to edit."""
    if out.exists() and not force:
        typer.echo(
            f"error: {out} already exists; not overwriting it. "
            "Fix: choose another path, or pass --force to replace it.",
            err=True,
        )
        raise typer.Exit(code=EXIT_USAGE)
    if out.is_dir():
        typer.echo(f"error: {out} is a directory. Fix: give a file path.", err=True)
        raise typer.Exit(code=EXIT_USAGE)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(default_policy_path(), out)
    typer.echo(f"wrote {out}; edit it, then check it with `fedembed policy validate {out}`")
