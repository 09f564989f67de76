"""One audit-log record: its fields, its canonical bytes and its SHA-256 chain hash.

``hash`` is SHA-256 over the canonical JSON (sorted keys, compact separators, UTF-8) of
the record without ``hash``; ``prev_hash`` is the previous record's ``hash`` (64 zeros
for the first record). A record's ``detail`` may hold ids, counts and reasons, never a
vector or a text (:func:`check_detail_value`). The log that chains records is
:mod:`secure_index.service.audit_log`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "GENESIS_HASH",
    "HASH_FIELD",
    "MAX_DETAIL_TEXT",
    "MAX_DETAIL_VECTOR",
    "SHA256_HEX",
    "AuditRecord",
    "BadRecordError",
    "canonical_json",
    "check_detail_value",
    "ids_digest",
    "parse_record",
    "record_hash",
    "record_line",
]

GENESIS_HASH = "0" * 64
MAX_DETAIL_VECTOR = 8
MAX_DETAIL_TEXT = 512
HASH_FIELD = "hash"
_STR_FIELDS = ("time", "actor", "role", "action", "collection", "decision", "prev_hash", HASH_FIELD)
_FIELDS = frozenset(("seq", "detail", *_STR_FIELDS))
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the audit log (``hash`` covers every other field)."""

    seq: int
    time: str
    actor: str
    role: str
    action: str
    collection: str
    decision: str
    detail: dict[str, Any]
    prev_hash: str
    hash: str


def canonical_json(value: Any) -> bytes:
    """Sorted keys, compact separators, UTF-8, no NaN: the bytes that are hashed."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def record_line(fields: Mapping[str, Any]) -> bytes:
    """The record as stored: sorted keys, compact, non-ASCII escaped, one newline.

    Escaping keeps U+0085, U+2028 and U+2029 (line breaks to many tools) out of the
    file; the hash is over the UTF-8 canonical form, which parsing restores.
    """
    return (
        json.dumps(fields, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("ascii")
        + b"\n"
    )


def record_hash(fields: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a record's fields other than ``hash``."""
    body = {k: v for k, v in fields.items() if k != HASH_FIELD}
    return hashlib.sha256(canonical_json(body)).hexdigest()


def ids_digest(ids: list[str]) -> str:
    """SHA-256 (hex) of the canonical JSON of a list of document ids, in request order.

    Upload and delete records carry it instead of the ids themselves: whoever holds a
    batch's ids (the node that sent it) recomputes the digest and finds the batch's
    record; the log does not grow with the batch size.
    """
    return hashlib.sha256(canonical_json(list(ids))).hexdigest()


def check_detail_value(value: Any, where: str) -> None:
    """Refuse what looks like a vector or a text, and what JSON cannot hold."""
    if isinstance(value, str):
        if len(value) > MAX_DETAIL_TEXT:
            raise ValueError(
                f"audit: {where} is a string of {len(value)} characters (at most "
                f"{MAX_DETAIL_TEXT}); query or document text must never be logged"
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError(f"audit: {where} has a non-string key {key!r}")
            check_detail_value(key, f"{where} key")
            check_detail_value(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        if len(value) > MAX_DETAIL_VECTOR and numeric and any(isinstance(v, float) for v in value):
            raise ValueError(
                f"audit: {where} is a list of {len(value)} numbers (at most "
                f"{MAX_DETAIL_VECTOR}); vectors must never be logged"
            )
        for index, item in enumerate(value):
            check_detail_value(item, f"{where}[{index}]")
    elif value is not None and not isinstance(value, bool | int | float):
        raise ValueError(f"audit: {where} has type {type(value).__name__}, which is not JSON")


class BadRecordError(Exception):
    """A line or anchor that does not verify (internal; message says why)."""


def parse_record(raw: bytes) -> AuditRecord:
    """One JSONL line as a record; :class:`BadRecordError` says what is malformed."""
    try:
        fields = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRecordError(f"not a JSON record ({exc})") from exc
    if not isinstance(fields, dict):
        raise BadRecordError("not a JSON object")
    if set(fields) != _FIELDS:
        missing, extra = sorted(_FIELDS - set(fields)), sorted(set(fields) - _FIELDS)
        raise BadRecordError(f"wrong fields (missing {missing}, unexpected {extra})")
    seq = fields["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise BadRecordError(f"seq {seq!r} is not a positive integer")
    if not all(isinstance(fields[f], str) for f in _STR_FIELDS):
        raise BadRecordError("a field that must be a string is not")
    if not isinstance(fields["detail"], dict):
        raise BadRecordError("detail is not a JSON object")
    if not (SHA256_HEX.fullmatch(fields["hash"]) and SHA256_HEX.fullmatch(fields["prev_hash"])):
        raise BadRecordError("hash or prev_hash is not 64 lowercase hex digits")
    if record_hash(fields) != fields[HASH_FIELD]:
        raise BadRecordError("the hash does not match the record's content: the record was edited")
    return AuditRecord(**fields)
