"""The admin audit trail's keyed head anchor and its key.

The chain alone needs no key, so whoever can write the trail could cut or rewrite it and
recompute every hash. The head anchor ``trail.jsonl.head`` stops that: it holds the head
(``seq``, ``hash``), a copy of the head record and an HMAC-SHA-256 (RFC 2104) of the head
under the trail key (the 0600 file ``<home>/admin/trail.key``, created on first start, or
``FEDEMBED_ADMIN_TRAIL_KEY``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coordinator.admin.errors import AdminError
from coordinator.admin.trail_records import (
    GENESIS_HASH,
    BadRecordError,
    TrailError,
    canonical_json,
    parse_record,
    record_line,
)
from crypto.secret_files import read_secret_file, write_secret_file
from embedding_core.atomic_file import atomic_write_bytes

__all__ = [
    "ANCHOR_FORMAT",
    "TRAIL_KEY_FILE",
    "TrailAnchor",
    "load_trail_key",
    "read_anchor",
    "write_anchor",
]

logger = logging.getLogger(__name__)

TRAIL_KEY_FILE = "trail.key"
ANCHOR_FORMAT = "fedembed-admin-trail-anchor"
_MAC_LABEL = b"fedembed/admin-trail-anchor/v1"
_KEY_BYTES = 32
_MIN_ENV_KEY_CHARS = 32


def load_trail_key(state: Path, env_value: str | None, *, create: bool) -> bytes:
    """The trail key: ``env_value`` (FEDEMBED_ADMIN_TRAIL_KEY) or the 0600 ``trail.key``.

    Args:
        state: The admin API's state folder (``<home>/admin``).
        env_value: The key from the environment, if set (at least 32 characters).
        create: Make a random key file when there is none (the service's first start).

    Raises:
        TrailError: When the key is too short, the file is not owner-only, or missing
            and ``create`` is False.
    """
    if env_value is not None:
        if len(env_value) < _MIN_ENV_KEY_CHARS:
            raise TrailError(
                f"FEDEMBED_ADMIN_TRAIL_KEY has {len(env_value)} characters",
                expected=f"at least {_MIN_ENV_KEY_CHARS} random characters",
                fix="set it to the output of `python -c 'import secrets; "
                "print(secrets.token_hex(32))'`, or unset it to use admin/trail.key",
            )
        material = env_value.encode("utf-8")
    else:
        path = state / TRAIL_KEY_FILE
        try:
            material = read_secret_file(path, what="audit trail key")
        except FileNotFoundError:
            if not create:
                raise TrailError(
                    f"there is no audit trail key at {path}",
                    expected="the key the admin API created on its first start, or "
                    "FEDEMBED_ADMIN_TRAIL_KEY",
                    fix="point --home at the consortium home the admin API runs with",
                ) from None
            state.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_secret_file(path, secrets.token_hex(_KEY_BYTES).encode("ascii"))
            logger.info("trail: created the anchor key %s", path)
            material = read_secret_file(path, what="audit trail key")
        except AdminError:
            raise
        except Exception as exc:  # SecretFileError (mode, owner), OSError
            raise TrailError(
                f"the audit trail key {path} cannot be read: {getattr(exc, 'problem', exc)}",
                expected="an owner-only (0600) key file",
                fix=getattr(exc, "fix", "") or f"chmod 600 {path}",
            ) from exc
    return hmac.new(material, _MAC_LABEL, hashlib.sha256).digest()


@dataclass(frozen=True)
class TrailAnchor:
    """The head the anchor names: ``seq``, ``hash`` and a copy of the record (None at 0)."""

    seq: int
    hash: str
    record: dict[str, Any] | None


def _anchor_path(path: Path) -> Path:
    return path.with_name(path.name + ".head")


def _mac(key: bytes, seq: int, head: str) -> str:
    message = canonical_json({"format": ANCHOR_FORMAT, "seq": seq, "hash": head})
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def read_anchor(path: Path, key: bytes) -> TrailAnchor | None:
    """The anchor of the trail at ``path``, its MAC checked; None when missing.

    Raises:
        BadRecordError: When the anchor is unreadable, rewritten without the key, or its
            record copy is not its head.
    """
    try:
        doc = json.loads(_anchor_path(path).read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BadRecordError(f"the head anchor cannot be read ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != ANCHOR_FORMAT:
        raise BadRecordError("the head anchor is not a trail anchor")
    seq, head, record, mac = doc.get("seq"), doc.get("hash"), doc.get("record"), doc.get("mac")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise BadRecordError("the head anchor has an invalid seq")
    if not (isinstance(head, str) and isinstance(mac, str)):
        raise BadRecordError("the head anchor has no hash or MAC")
    if not hmac.compare_digest(_mac(key, seq, head), mac):
        raise BadRecordError(
            "the head anchor's MAC does not verify: it was rewritten without the key"
        )
    if seq == 0:
        if head != GENESIS_HASH or record is not None:
            raise BadRecordError("the head anchor at seq 0 must name the genesis")
        return TrailAnchor(0, head, None)
    checked = parse_record(record_line(record)) if isinstance(record, dict) else None
    if checked is None or (checked["seq"], checked["hash"]) != (seq, head):
        raise BadRecordError("the head anchor's record copy is not its head")
    return TrailAnchor(seq, head, checked)


def write_anchor(path: Path, key: bytes, seq: int, head: str, record: Any) -> None:
    """Replace the anchor of the trail at ``path`` atomically (MAC'ed under ``key``)."""
    doc = {"format": ANCHOR_FORMAT, "seq": seq, "hash": head, "record": record}
    doc["mac"] = _mac(key, seq, head)
    atomic_write_bytes(_anchor_path(path), record_line(doc))
