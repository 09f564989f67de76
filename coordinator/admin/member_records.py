"""What the admin API keeps of each member, and how the roster reports members.

One JSON record per member in ``<home>/members/<name>.json`` (public data only: the kit
name, state, public key and its fingerprint, the Flower node id the SuperLink gave the
key, and whether the SuperLink was told); :class:`MemberView`, :class:`Roster` and
:class:`Enrolment` are what :class:`coordinator.admin.members.MemberRoster` answers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from deployment.flower_nodes import SuperNodeInfo
from embedding_core.atomic_file import atomic_write_json

__all__ = [
    "NOT_KNOWN",
    "PENDING",
    "REGISTERED",
    "UNREGISTERED",
    "Enrolment",
    "MemberRecord",
    "MemberRecords",
    "MemberView",
    "Roster",
]

logger = logging.getLogger(__name__)

REGISTERED = "registered"
PENDING = "pending"
UNREGISTERED = "unregistered"
NOT_KNOWN = "not known"


@dataclass(frozen=True)
class MemberRecord:
    """What the admin API keeps of one member (public data only)."""

    name: str
    state: str  # enrolled | revoked
    auth_pub: str
    fingerprint: str
    flower_node_id: int | None = None
    superlink: str = NOT_KNOWN  # registered | pending | unregistered | not known
    enrolled_at: str | None = None
    revoked_at: str | None = None


@dataclass(frozen=True)
class MemberView:
    """One member as the roster lists it.

    ``status``, ``online`` and ``last_seen`` are the SuperLink's (None when its node is
    not known or the SuperLink did not answer).
    """

    name: str
    state: str
    fingerprint: str
    flower_node_id: int | None
    superlink: str
    status: str | None
    online: bool | None
    last_seen: str | None
    enrolled_at: str | None
    revoked_at: str | None
    kit: str | None


@dataclass(frozen=True)
class Roster:
    """Every member (enrolled first, by name), and what the SuperLink holds besides."""

    members: list[MemberView]
    superlink_reachable: bool
    unmatched_nodes: list[SuperNodeInfo]


@dataclass(frozen=True)
class Enrolment:
    """A new member: its kit to ship and the digests to compare out of band."""

    member: MemberView
    kit: Path
    ca_fingerprint: str
    authorized_nodes_sha256: str


class MemberRecords:
    """The member records in one folder (``<home>/members``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def all(self) -> dict[str, MemberRecord]:
        """Every readable record by member name (an unreadable one is logged and skipped)."""
        records: dict[str, MemberRecord] = {}
        if not self.folder.is_dir():
            return records
        for path in sorted(self.folder.glob("*.json")):
            try:
                record = MemberRecord(**json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError) as err:
                logger.warning("members: record %s unreadable (%s); ignored", path.name, err)
                continue
            records[record.name] = record
        return records

    def save(self, record: MemberRecord) -> None:
        """Write ``record`` (atomically, replacing the member's earlier record)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_json(self.folder / f"{record.name}.json", asdict(record))
