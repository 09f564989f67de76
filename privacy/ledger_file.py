"""The privacy ledger's file: its record format, validation and atomic writes.

A ledger file is a small JSON document (schema ``fedembed.privacy_ledger``, version 1)
holding the node's identity (node id, delta, privacy unit), its budget and one
``LedgerEntry`` per charge: mechanism parameters only (noise multiplier, sample rate,
steps) and the observer the charged noise multiplier holds for
(:class:`privacy.observers.Observer`), never data or vectors. Files written before
entries named their observer load with ``LEGACY_OBSERVER``: they charged the secure
sum's noise, which is what the coordinator faces. It is written atomically
(:mod:`embedding_core.atomic_file`: temporary file, fsync, rename, fsync of the
directory), so it is always either the old or the new file.

Reading validates every field; anything unexpected is a ``LedgerError`` naming the file
and the fix, never a silent reset of the node's privacy spending. The bookkeeping that
uses this format is :mod:`privacy.ledger`.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypedDict

from embedding_core.atomic_file import atomic_write_json
from privacy.ledger_errors import LedgerError
from privacy.observers import Observer

__all__ = [
    "ACCOUNTANT",
    "CONVERSION",
    "LEGACY_ACCOUNTANTS",
    "LEGACY_CONVERSIONS",
    "LEGACY_OBSERVER",
    "SCHEMA",
    "VERSION",
    "LedgerEntry",
    "check_identity",
    "is_finite_number",
    "read_ledger",
    "utc_timestamp",
    "write_ledger",
]

SCHEMA: Final = "fedembed.privacy_ledger"
VERSION: Final = 1
ACCOUNTANT: Final = "gdp-full-batch+pld"
"""Exact Gaussian DP while every charge is full-batch, PLD composition otherwise."""
LEGACY_ACCOUNTANTS: Final = frozenset({"rdp", "gdp-full-batch+rdp"})
"""Labels of older ledgers: the same entries, read with the current accountant."""
CONVERSION: Final = "none"
"""Epsilon is read off the composed privacy curve itself (no RDP conversion)."""
LEGACY_CONVERSIONS: Final = frozenset({"balle2020"})
"""The RDP conversion older ledgers named; their entries are read as above."""
LEGACY_OBSERVER: Final = Observer.COORDINATOR.value
"""The observer of an entry written before entries named one."""
_OBSERVERS: Final = tuple(observer.value for observer in Observer)


class LedgerEntry(TypedDict):
    """One recorded charge (mechanism parameters only)."""

    run_id: str
    round: int
    noise_multiplier: float
    sample_rate: float
    steps: int
    epsilon_after: float
    timestamp: str
    observer: str


def utc_timestamp() -> str:
    """The current time as recorded in a ledger (ISO 8601, UTC, microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def is_finite_number(value: object) -> bool:
    """Whether ``value`` is a finite int or float (``bool`` is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def write_ledger(
    path: Path,
    *,
    node_id: str,
    unit: str,
    delta: float,
    max_epsilon: float,
    created: str,
    entries: list[LedgerEntry],
) -> None:
    """Writes the ledger's JSON document (in the file's key order) atomically to ``path``."""
    document = {
        "schema": SCHEMA,
        "version": VERSION,
        "node_id": node_id,
        "unit": unit,
        "delta": delta,
        "accountant": ACCOUNTANT,
        "conversion": CONVERSION,
        "max_epsilon": max_epsilon,
        "created": created,
        "entries": [dict(entry) for entry in entries],
    }
    atomic_write_json(path, document)


# ------------------------------------------------------------------------- reading


def _corrupt(path: Path, problem: str) -> LedgerError:
    return LedgerError(
        f"privacy ledger {path} is corrupt: {problem}",
        expected=f'a JSON ledger written by fedembed (schema "{SCHEMA}", version {VERSION})',
        fix="restore the file from a backup or repair it by hand; do not delete it, "
        "a new empty ledger would reset the node's recorded privacy spending",
    )


def read_ledger(path: Path) -> dict[str, Any]:
    """Reads and validates a ledger file.

    Returns:
        The document, with ``"entries"`` parsed into ``LedgerEntry`` values.

    Raises:
        LedgerError: The file cannot be read or is corrupt.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LedgerError(
            f"privacy ledger {path} cannot be read: {exc}",
            expected="a readable UTF-8 JSON file",
            fix="check the file's permissions, or restore it from a backup",
        ) from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _corrupt(path, f"invalid JSON at line {exc.lineno}: {exc.msg}") from exc
    if not isinstance(document, dict):
        raise _corrupt(path, "the top level is not a JSON object")
    if document.get("schema") != SCHEMA:
        raise _corrupt(path, f"schema is {document.get('schema')!r}")
    if document.get("version") != VERSION:
        raise _corrupt(
            path, f"version {document.get('version')!r} is not supported (want {VERSION})"
        )
    accountant = document.get("accountant")
    conversion = document.get("conversion")
    if (accountant != ACCOUNTANT and accountant not in LEGACY_ACCOUNTANTS) or (
        conversion != CONVERSION and conversion not in LEGACY_CONVERSIONS
    ):
        raise _corrupt(
            path,
            f"accountant {document.get('accountant')!r} / conversion "
            f"{document.get('conversion')!r} is not {ACCOUNTANT!r} / {CONVERSION!r}",
        )
    for key, kind in (("node_id", str), ("unit", str), ("created", str)):
        if not isinstance(document.get(key), kind):
            raise _corrupt(path, f"field {key!r} is missing or not a string")
    for key in ("delta", "max_epsilon"):
        if not is_finite_number(document.get(key)):
            raise _corrupt(path, f"field {key!r} is missing or not a number")
    entries = document.get("entries")
    if not isinstance(entries, list):
        raise _corrupt(path, "field 'entries' is missing or not a list")
    document["entries"] = [_parse_entry(path, index, raw) for index, raw in enumerate(entries)]
    return document


def _parse_entry(path: Path, index: int, raw: object) -> LedgerEntry:
    where = f"entry {index}"
    if not isinstance(raw, dict):
        raise _corrupt(path, f"{where} is not a JSON object")
    missing = [key for key in LedgerEntry.__annotations__ if key not in raw and key != "observer"]
    if missing:
        raise _corrupt(path, f"{where} lacks {', '.join(missing)}")
    run_id, rnd, steps = raw["run_id"], raw["round"], raw["steps"]
    sigma, rate = raw["noise_multiplier"], raw["sample_rate"]
    eps_after, stamp = raw["epsilon_after"], raw["timestamp"]
    if not isinstance(run_id, str) or not isinstance(stamp, str):
        raise _corrupt(path, f"{where}: run_id and timestamp must be strings")
    for name, value in (("round", rnd), ("steps", steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise _corrupt(path, f"{where}: {name} must be an integer >= 0, got {value!r}")
    if not is_finite_number(sigma) or sigma <= 0:
        raise _corrupt(path, f"{where}: noise_multiplier must be > 0, got {sigma!r}")
    if not is_finite_number(rate) or not 0 < rate <= 1:
        raise _corrupt(path, f"{where}: sample_rate must be in (0, 1], got {rate!r}")
    if not is_finite_number(eps_after) or eps_after < 0:
        raise _corrupt(path, f"{where}: epsilon_after must be >= 0, got {eps_after!r}")
    observer = raw.get("observer", LEGACY_OBSERVER)
    if observer not in _OBSERVERS:
        raise _corrupt(path, f"{where}: observer must be one of {_OBSERVERS}, got {observer!r}")
    return LedgerEntry(
        run_id=run_id,
        round=rnd,
        noise_multiplier=float(sigma),
        sample_rate=float(rate),
        steps=steps,
        epsilon_after=float(eps_after),
        timestamp=stamp,
        observer=observer,
    )


def check_identity(
    path: Path, document: dict[str, Any], *, node_id: str, delta: float, unit: str
) -> None:
    """Refuses a ledger document of another node, delta or privacy unit.

    Raises:
        LedgerError: ``document`` was written for another node, delta or unit.
    """
    if document["node_id"] != node_id:
        raise LedgerError(
            f"privacy ledger {path} belongs to node {document['node_id']!r}, "
            f"not to node {node_id!r}",
            expected=f"the ledger file of node {node_id!r}",
            fix="point the node config's ledger path at this node's own ledger file",
        )
    if document["delta"] != delta:
        raise LedgerError(
            f"privacy ledger {path} of node {node_id!r} states epsilons at delta="
            f"{document['delta']!r}, but the node config asks for delta={delta!r}; "
            "epsilons at different deltas cannot be composed",
            expected=f"delta={document['delta']!r}, as recorded in the ledger",
            fix=f"set delta back to {document['delta']!r} in the node config, or start a "
            "new ledger file only if the consortium agrees to a separate budget",
        )
    if document["unit"] != unit:
        raise LedgerError(
            f"privacy ledger {path} of node {node_id!r} counts privacy per "
            f"{document['unit']!r}, but the node config asks for {unit!r}; epsilons of "
            "different privacy units cannot be composed",
            expected=f"unit {document['unit']!r}, as recorded in the ledger",
            fix=f"set the privacy unit back to {document['unit']!r} in the node config",
        )
