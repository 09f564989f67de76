"""The admin audit trail's records: their fields, canonical form, hash and checks.

Each state change of the control plane is one line of ``<home>/admin/trail.jsonl``::

    {"action":"token.create","actor":"<token id>","actor_name":..,"decision":"ok",
     "detail":{..},"hash":..,"prev_hash":..,"role":"admin","seq":N,"target":..,"time":..}

``hash`` is SHA-256 of the canonical JSON (sorted keys, compact, UTF-8) of the record
without ``hash``; ``prev_hash`` is the previous record's hash (64 zeros before record 1);
record ``seq`` is on line ``seq``.

Records hold ids, counts, names and reasons: :func:`check_detail_value` refuses a value
that looks like a text (a string over :data:`MAX_DETAIL_TEXT` characters) or a vector (a
list of over :data:`MAX_DETAIL_VECTOR` numbers with a float among them).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from coordinator.admin.errors import AdminError

__all__ = [
    "GENESIS_HASH",
    "HEX64",
    "MAX_DETAIL_TEXT",
    "MAX_DETAIL_VECTOR",
    "RESTORE_HINT",
    "TRAIL_FILE",
    "BadRecordError",
    "TrailError",
    "canonical_json",
    "check_detail_value",
    "parse_record",
    "record_hash",
    "record_line",
]

TRAIL_FILE = "trail.jsonl"
GENESIS_HASH = "0" * 64
MAX_DETAIL_TEXT = 256
MAX_DETAIL_VECTOR = 8
HEX64 = re.compile(r"[0-9a-f]{64}")
RESTORE_HINT = "restore trail.jsonl and trail.jsonl.head together from a backup"
_STR_FIELDS = ("time", "actor", "actor_name", "role", "action", "target", "decision")
_FIELDS = frozenset(("seq", "detail", "prev_hash", "hash", *_STR_FIELDS))


class TrailError(AdminError):
    """The trail cannot be opened, extended or its key read (the service's trouble)."""

    status = 503


class BadRecordError(Exception):
    """A line or anchor that does not verify (the trail's own, never shown as is)."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8: what the hashes and MACs are taken of."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def record_line(fields: Mapping[str, Any]) -> bytes:
    """A record as stored: canonical, non-ASCII escaped (no Unicode line breaks), newline."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode("ascii") + b"\n"


def record_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical record without its ``hash`` field."""
    body = {k: v for k, v in fields.items() if k != "hash"}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def check_detail_value(value: Any, where: str) -> None:
    """Refuse what looks like a text or a vector, and what JSON cannot hold.

    Raises:
        ValueError: Naming ``where`` the value stands.
    """
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_TEXT:
            raise ValueError(f"trail: {where} is a text of {len(value)} characters: never logged")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"trail: {where} has a non-string key")
            check_detail_value(key, f"{where} key")
            check_detail_value(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if len(value) > MAX_DETAIL_VECTOR and numbers and any(isinstance(v, float) for v in value):
            raise ValueError(f"trail: {where} is a list of {len(value)} numbers: never logged")
        for index, item in enumerate(value):
            check_detail_value(item, f"{where}[{index}]")
    elif value is not None and not isinstance(value, bool | int | float):
        raise ValueError(f"trail: {where} has type {type(value).__name__}, which is not JSON")


def parse_record(raw: bytes) -> dict[str, Any]:
    """One stored line (without its newline) as a record, its fields and hash checked.

    Raises:
        BadRecordError: Saying what is wrong with it.
    """
    try:
        fields = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRecordError(f"not a JSON record ({exc})") from exc
    if not isinstance(fields, dict) or set(fields) != _FIELDS:
        raise BadRecordError("not a trail record (wrong fields)")
    seq = fields["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise BadRecordError(f"seq {seq!r} is not a positive integer")
    if not all(isinstance(fields[k], str) for k in _STR_FIELDS) or not isinstance(
        fields["detail"], dict
    ):
        raise BadRecordError("a field that must be a string is not")
    if not (HEX64.fullmatch(fields["hash"]) and HEX64.fullmatch(fields["prev_hash"])):
        raise BadRecordError("hash or prev_hash is not 64 lowercase hex digits")
    if record_hash(fields) != fields["hash"]:
        raise BadRecordError("the hash does not match the record's content: the record was edited")
    return fields
