"""Map policy checks to the regulatory provisions they provide evidence for.

The mapping lives in the package data file ``regulations.toml``; it is engineering
evidence for a compliance review, not legal advice (see :data:`DISCLAIMER`).
"""

from __future__ import annotations

import functools
import logging
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from policies.checks import (
    KNOWN_CHECK_IDS,
    STATUS_FAIL,
    STATUS_NOT_EVALUATED,
    STATUS_PASS,
    PolicyCheck,
)
from policies.errors import PolicyError

__all__ = [
    "DISCLAIMER",
    "REGULATIONS_FILENAME",
    "STATUS_PARTIAL",
    "RegulationEntry",
    "RegulationStatus",
    "load_regulations",
    "map_regulations",
    "regulation_status",
]

logger = logging.getLogger(__name__)

DISCLAIMER: Final = (
    "This mapping of fedembed checks to regulatory provisions is engineering evidence to "
    "support a compliance review, not legal advice; whether a deployment complies is for "
    "the controller and its legal counsel to decide."
)
REGULATIONS_FILENAME: Final = "regulations.toml"
STATUS_PARTIAL: Final = "partial"
RegulationStatus = Literal["pass", "fail", "partial", "not_evaluated"]


class RegulationEntry(BaseModel):
    """One regulatory provision and the checks that provide evidence for it."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    framework: str = Field(min_length=1)
    article: str = Field(min_length=1)
    title: str = Field(min_length=1)
    requirement: str = Field(min_length=1)
    how_addressed: str = Field(min_length=1)
    checks: tuple[str, ...]

    @field_validator("checks", mode="before")
    @classmethod
    def _list_to_tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - KNOWN_CHECK_IDS)
        if unknown:
            raise ValueError(f"unknown check ids {unknown}; known: {sorted(KNOWN_CHECK_IDS)}")
        return value


class _RegulationFile(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    regulation: tuple[RegulationEntry, ...] = Field(min_length=1)

    @field_validator("regulation", mode="before")
    @classmethod
    def _list_to_tuple(cls, value: object) -> object:
        return tuple(value) if isinstance(value, list) else value


def _default_path() -> Path:
    return Path(__file__).resolve().with_name(REGULATIONS_FILENAME)


@functools.cache
def _load(path: Path) -> tuple[RegulationEntry, ...]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        entries = _RegulationFile.model_validate(data).regulation
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ValidationError) as exc:
        raise PolicyError(
            f"the regulation mapping cannot be used: {exc}",
            path=path,
            expected="[[regulation]] tables with framework, article, title, requirement, "
            "how_addressed and checks (known check ids)",
            fix="correct the file, or reinstall fedembed to restore the shipped mapping",
        ) from None
    logger.debug("loaded %d regulation entries from %s", len(entries), path)
    return entries


def load_regulations(path: str | Path | None = None) -> tuple[RegulationEntry, ...]:
    """Read a regulation mapping (default: the one shipped with fedembed).

    Args:
        path: A TOML file of ``[[regulation]]`` tables; None for the shipped mapping.

    Returns:
        The validated entries, in file order.

    Raises:
        PolicyError: The file is missing, not TOML, or an entry is malformed or names
            an unknown check id.
    """
    return _load(Path(path).resolve() if path is not None else _default_path())


def regulation_status(check_ids: Sequence[str], statuses: Mapping[str, str]) -> RegulationStatus:
    """Aggregate check statuses into the status of one provision.

    Args:
        check_ids: The checks that provide evidence for the provision.
        statuses: Check id to status; a check that is absent counts as not evaluated.

    Returns:
        ``"fail"`` if any check failed; ``"pass"`` if all passed; ``"not_evaluated"`` if
        none was evaluated (or there are no checks); otherwise ``"partial"``.
    """
    found = [statuses.get(check_id, STATUS_NOT_EVALUATED) for check_id in check_ids]
    if STATUS_FAIL in found:
        return "fail"
    if found and all(status == STATUS_PASS for status in found):
        return "pass"
    if STATUS_PASS in found:
        return "partial"
    return "not_evaluated"


def map_regulations(
    checks: Sequence[PolicyCheck], entries: Sequence[RegulationEntry] | None = None
) -> list[dict[str, Any]]:
    """The ``regulations`` section of the audit results contract.

    Args:
        checks: The evaluated checks (e.g. from :func:`policies.evaluate_audit`).
        entries: The mapping to apply; None for the shipped one.

    Returns:
        One dict per provision: framework, article, title, requirement, how_addressed,
        checks (ids) and status (``pass``/``fail``/``partial``/``not_evaluated``).
    """
    statuses = {check.id: check.status for check in checks}
    rows = []
    for entry in load_regulations() if entries is None else entries:
        row: dict[str, Any] = entry.model_dump()
        row["checks"] = list(entry.checks)
        row["status"] = regulation_status(entry.checks, statuses)
        rows.append(row)
    return rows
