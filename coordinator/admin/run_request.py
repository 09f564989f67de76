"""What an operator may ask of a federation run, and the run config the admin API submits.

The operator's ``run_config`` may set every key of the Flower App's
``[tool.flwr.app.config]`` (Flower refuses any other) except :data:`MANAGED_KEYS`, which
tie the run to its own folder, the consortium's coordinator kit, its name as run tag and
the admin API's data folder. :func:`validated_run_config` checks the whole config with
:class:`federation.run_config.FederationConfig` and that the ``eval-dataset`` exists,
and names the JSON field of every mistake (``run_config.<key>``).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from coordinator.admin.errors import (
    AdminConflictError,
    AdminInvalidError,
    AdminUnavailableError,
)
from coordinator.admin.settings import AdminSettings
from embedding_core.data import resolve_dataset_dir
from embedding_core.errors import FedembedError
from federation.round_settings import RecordValue
from federation.run_config import NO_EVALUATION, FederationConfig
from federation.wire import AggregationMode
from kits.layout import CKKS_PUBLIC

__all__ = ["MANAGED_KEYS", "RunRequest", "validated_run_config"]

MANAGED_KEYS = ("out-dir", "coordinator-kit", "run-tag", "data-dir")
"""Run-config keys the admin API sets itself (the run's folder, kit, tag and data)."""


@dataclass(frozen=True)
class RunRequest:
    """What the operator asks for: an optional name and run-config keys."""

    name: str | None = None
    run_config: Mapping[str, RecordValue] = field(default_factory=dict)


def _data_dir(settings: AdminSettings) -> str:
    if settings.data_dir is not None:
        return str(settings.data_dir)
    return os.environ.get("FEDEMBED_DATA_DIR", "")


def _app_config_keys(settings: AdminSettings) -> set[str]:
    """The keys of the Flower App's ``[tool.flwr.app.config]`` (Flower accepts no other)."""
    pyproject = settings.project_dir / "pyproject.toml"
    try:
        config = tomllib.loads(pyproject.read_text(encoding="utf-8"))["tool"]["flwr"]["app"]
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, KeyError) as err:
        raise AdminUnavailableError(
            f"the Flower App at {settings.project_dir} has no readable [tool.flwr.app] ({err})",
            expected="the fedembed project folder (pyproject.toml with [tool.flwr.app])",
            fix="set FEDEMBED_ADMIN_PROJECT_DIR to the fedembed project folder",
        ) from None
    return set(config.get("config", {}))


def validated_run_config(
    settings: AdminSettings, request: RunRequest, name: str, folder: Path
) -> dict[str, RecordValue]:
    """The run config to submit: the operator's keys plus the managed ones, validated."""
    known = _app_config_keys(settings)
    for key in request.run_config:
        if key not in known:
            raise AdminInvalidError(
                f"run_config.{key} is not a key of the federation's run config",
                expected=f"keys of [tool.flwr.app.config]: {', '.join(sorted(known))}",
                fix=f"remove or rename run_config.{key}",
            )
        if key in MANAGED_KEYS:
            raise AdminInvalidError(
                f"run_config.{key} is set by the admin API",
                expected=f"run_config without {', '.join(MANAGED_KEYS)}",
                fix=f"remove {key} from run_config: every run writes to runs/<name>/, "
                "uses the consortium's coordinator kit and is tagged with its name",
            )
    config: dict[str, RecordValue] = {
        **request.run_config,
        "out-dir": str(folder),
        "coordinator-kit": str(settings.consortium.coordinator_kit),
        "run-tag": name,
    }
    data_dir = _data_dir(settings)
    if data_dir:
        config["data-dir"] = data_dir
    try:
        parsed = FederationConfig.from_run_config(config)
    except FedembedError as err:
        raise AdminInvalidError(
            f"run_config: {err.problem}",
            expected=err.expected or "a valid run config",
            fix="correct that key in the request's run_config object (keys as in "
            "[tool.flwr.app.config], e.g. num-server-rounds)",
        ) from None
    if parsed.eval_dataset != NO_EVALUATION:
        try:
            resolve_dataset_dir(data_dir or None, parsed.eval_dataset, marker="corpus.jsonl")
        except FedembedError:
            raise AdminInvalidError(
                f"run_config.eval-dataset={parsed.eval_dataset!r}: no such BEIR dataset "
                "in the admin API's data folder",
                expected="the name of a BEIR dataset folder (corpus.jsonl, queries.jsonl, "
                f"qrels/test.tsv) under {data_dir or 'FEDEMBED_DATA_DIR'}, or 'none'",
                fix="set run_config.eval-dataset to an existing dataset, or to 'none' to "
                "skip the central evaluation",
            ) from None
    if (
        parsed.aggregation == AggregationMode.CKKS
        and not (settings.consortium.coordinator_kit / CKKS_PUBLIC).is_file()
    ):
        raise AdminConflictError(
            "the coordinator kit has no public CKKS context: a CKKS run cannot start",
            expected=f"{settings.consortium.coordinator_kit / CKKS_PUBLIC} from the members' "
            "key ceremony",
            fix="have the key-holding member make the CKKS key pair (`fedembed node "
            "ckks-keygen`) and install its public bundle (`fedembed coordinator "
            "ckks-install-public`), or set run_config.aggregation to 'secaggplus'",
        )
    return config
