"""A node's record of what it contributed to each CKKS round, and of what it decrypted.

One JSON file in the node's state folder (``contributions.json``), read and written under
an inter-process file lock. Each entry is one (run tag, round): the Flower run id, the
digest of the node's own ciphertexts, the number of noise shares ``t`` it trained with,
the update's length, the set announced before training that its signature binds (if
any), the one set of contributions it endorsed for that round
(:mod:`federation.contribution_endorsement`), and whether it has already decrypted a
sum for that round. A node endorses at most one set and decrypts at most one sum per
(run tag, round), and endorses none in a round whose set was announced: two different
sums of one round would give their difference, e.g. one node's update.

A new contribution to a (run tag, round) replaces the entry (and its decryption mark):
the node's privacy ledger refuses to train a round twice, so a second contribution means
a fresh run (a new Flower run id, which every signature binds), not a replay.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock

from federation.contributions import DecryptionRefusedError

__all__ = ["CONTRIBUTION_LOG_FILE", "ContributionLog", "ContributionRecord"]

CONTRIBUTION_LOG_FILE = "contributions.json"


@dataclass(frozen=True, kw_only=True)
class ContributionRecord:
    """What the node contributed to one round."""

    run_tag: str
    server_round: int
    flower_run_id: int
    digest: str
    noise_shares: int
    length: int
    endorsed: str = ""
    """The digest (hex) of the one contribution set the node endorsed for this round."""
    decrypted: bool = False
    members: tuple[str, ...] = ()
    """The announced set (sorted node ids) the node's signature binds; empty if none."""

    def __post_init__(self) -> None:
        # JSON gives a list back; the record keeps the sorted tuple.
        object.__setattr__(self, "members", tuple(sorted(self.members)))


def _key(run_tag: str, server_round: int) -> str:
    return json.dumps([run_tag, int(server_round)])


class ContributionLog:
    """The node's contribution records in ``path`` (a JSON file), under a file lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = FileLock(str(self.path) + ".lock")

    def _load(self) -> dict[str, dict[str, Any]]:
        if not self.path.exists():
            return {}
        content = json.loads(self.path.read_text(encoding="utf-8"))
        if not isinstance(content, dict):
            raise ValueError(f"{self.path} is not a contribution log")
        return content

    def _save(self, entries: dict[str, dict[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".contributions-", dir=self.path.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(entries, indent=2, sort_keys=True) + "\n")
        os.replace(tmp, self.path)

    def record(self, entry: ContributionRecord) -> None:
        """Store ``entry`` (replacing an earlier contribution to the same round)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            entries = self._load()
            entries[_key(entry.run_tag, entry.server_round)] = asdict(
                ContributionRecord(**{**asdict(entry), "endorsed": "", "decrypted": False})
            )
            self._save(entries)

    def get(self, run_tag: str, server_round: int) -> ContributionRecord | None:
        """The entry of (run tag, round), if the node contributed to it."""
        with self._lock:
            raw = self._load().get(_key(run_tag, server_round))
        return None if raw is None else ContributionRecord(**raw)

    def claim_endorsement(
        self,
        run_tag: str,
        server_round: int,
        set_digest: str,
        check: Callable[[ContributionRecord], None],
    ) -> ContributionRecord:
        """Record that the node endorses ``set_digest`` for (run tag, round): one set only.

        Endorsing the same set again is allowed (a retried request); any other set of the
        round is refused. ``check`` runs under the lock.

        Raises:
            DecryptionRefusedError: No contribution to that round, a set announced for
                it, another set already endorsed, or ``check`` raised it.
        """
        with self._lock:
            entries = self._load()
            raw = entries.get(_key(run_tag, server_round))
            if raw is None:
                raise DecryptionRefusedError()
            entry = ContributionRecord(**raw)
            if entry.members or entry.endorsed not in ("", set_digest):
                raise DecryptionRefusedError()
            check(entry)
            entries[_key(run_tag, server_round)] = {**raw, "endorsed": set_digest}
            self._save(entries)
        return ContributionRecord(**{**raw, "endorsed": set_digest})

    def claim_decryption(
        self,
        run_tag: str,
        server_round: int,
        check: Callable[[ContributionRecord], None],
    ) -> ContributionRecord:
        """Mark (run tag, round) decrypted if ``check`` passes; at most once per round.

        ``check`` runs under the lock, so two requests for one round cannot both pass.

        Raises:
            DecryptionRefusedError: No contribution to that round, already decrypted, or
                ``check`` raised it.
        """
        with self._lock:
            entries = self._load()
            raw = entries.get(_key(run_tag, server_round))
            if raw is None:
                raise DecryptionRefusedError()
            entry = ContributionRecord(**raw)
            if entry.decrypted:
                raise DecryptionRefusedError()
            check(entry)
            entries[_key(run_tag, server_round)] = {**raw, "decrypted": True}
            self._save(entries)
        return entry
