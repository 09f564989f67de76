"""The consortium's members: enrol, register with the SuperLink, revoke, list.

:class:`MemberRoster` keeps the kits under ``<home>/kits`` (:mod:`kits.enrolment`), the
SuperLink's node registry (``flwr supernode ...``, :mod:`deployment.flower_nodes`) and
one record per member in ``<home>/members/<name>.json`` in step:

- **enrol**: a kit for the new member signed into the consortium (its own ``auth.pub``,
  no private key), its key on the coordinator kit's authorised list, the key registered
  with the SuperLink; the record keeps the Flower node id the SuperLink gave that key.
- **register**: registers the key of a member enrolled without the admin API (at
  provisioning) and records its node id.
- **revoke**: the key leaves the authorised list (the coordinator hides the node from
  every run and refuses its replies), the SuperLink unregisters the node, and the key is
  kept as revoked so that it is not enrolled again by mistake.
- **list**: members by kit name, with Flower node id, online state and last seen.

``flwr supernode list`` reports no public keys: a member's SuperLink node is the node id
its record holds, and the record counts only while its key is the member's authorised
key (both compared with :func:`coordinator.authorised_grid.canonical_key`).
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from coordinator.admin.errors import (
    AdminConflictError,
    AdminInvalidError,
    AdminNotFoundError,
    AdminUnavailableError,
)
from coordinator.admin.member_records import (
    NOT_KNOWN,
    PENDING,
    REGISTERED,
    UNREGISTERED,
    Enrolment,
    MemberRecord,
    MemberRecords,
    MemberView,
    Roster,
)
from coordinator.admin.settings import AdminSettings
from coordinator.admin.superlink import control_api_listening, ensure_connection
from coordinator.authorised_grid import canonical_key
from deployment.flower_nodes import (
    SuperLinkUnreachableError,
    SuperNodeInfo,
    SuperNodeKeyInUseError,
    SuperNodeNotFoundError,
    list_supernodes,
    register_node_key,
    unregister_supernode,
)
from embedding_core.errors import FedembedError
from kits.enrolment import (
    EnrolmentConflictError,
    MemberNotFoundError,
    enrol_member,
    revoke_member,
    revoked_members,
)
from kits.layout import AUTHORIZED_NODES, ProvisioningError, sha256_file, validate_node_ids
from kits.loader import load_coordinator_kit
from kits.node_keys import auth_key_fingerprint, validate_member_keys

# The roster's answer types are defined in member_records and re-exported here.
__all__ = ["Enrolment", "MemberRecord", "MemberRoster", "MemberView", "Roster"]

logger = logging.getLogger(__name__)


def _same_key(a: str, b: str) -> bool:
    left = canonical_key(a)
    return left is not None and left == canonical_key(b)


class MemberRoster:
    """Members of the consortium at ``settings.home`` (kits, SuperLink, records)."""

    def __init__(self, settings: AdminSettings) -> None:
        self.settings = settings
        self.home = settings.consortium
        self.records = MemberRecords(self.home.members)
        self._lock = threading.Lock()

    # -- records -------------------------------------------------------------------------

    def _records(self) -> dict[str, MemberRecord]:
        return self.records.all()

    def _save(self, record: MemberRecord) -> None:
        self.records.save(record)

    def _authorized(self) -> dict[str, str]:
        if not self.home.coordinator_kit.is_dir():
            raise AdminConflictError(
                f"the consortium at {self.home.root} has no kits yet",
                expected="<home>/kits written by `fedembed coordinator provision`",
                fix="provision the consortium: `fedembed coordinator provision --out "
                f"{self.home.kits} --node ...`",
            )
        try:
            return dict(load_coordinator_kit(self.home.coordinator_kit).authorized_nodes)
        except ProvisioningError as err:
            raise AdminConflictError(
                f"the coordinator kit cannot be used ({err.problem})",
                expected=err.expected or "the kits `fedembed coordinator provision` wrote",
                fix=err.fix or "restore <home>/kits from its original copy",
            ) from None

    def _listening(self) -> bool:
        if control_api_listening(self.settings.superlink_control):
            return True
        logger.warning("members: no SuperLink listens at %s", self.settings.superlink_control)
        return False

    def _nodes(self) -> tuple[bool, dict[int, SuperNodeInfo]]:
        if not self._listening():
            return False, {}
        try:
            nodes = list_supernodes(ensure_connection(self.settings), self.home.flwr_home)
        except FedembedError as err:  # unreachable, or a connection flwr cannot use
            logger.warning("members: SuperLink nodes not listed (%s)", err.problem)
            return False, {}
        return True, {node.node_id: node for node in nodes}

    def _view(
        self, record: MemberRecord, nodes: Mapping[int, SuperNodeInfo], *, kit: bool
    ) -> MemberView:
        node = nodes.get(record.flower_node_id) if record.flower_node_id is not None else None
        folder = self.home.kits / "nodes" / record.name
        return MemberView(
            name=record.name,
            state=record.state,
            fingerprint=record.fingerprint,
            flower_node_id=record.flower_node_id,
            superlink=record.superlink,
            status=None if node is None else node.status,
            online=None if node is None else node.online,
            last_seen=None if node is None else node.last_seen,
            enrolled_at=record.enrolled_at,
            revoked_at=record.revoked_at,
            kit=str(folder) if kit and folder.is_dir() else None,
        )

    def _current(self, authorized: Mapping[str, str]) -> dict[str, MemberRecord]:
        """Every member's record, enrolled (by the kit's key) and revoked."""
        records = self._records()
        current: dict[str, MemberRecord] = {}
        for entry in revoked_members(self.home.kits):
            if entry.node_id in authorized:
                continue
            kept = records.get(entry.node_id)
            if kept is not None and _same_key(kept.auth_pub, entry.auth_pub):
                current[entry.node_id] = replace(kept, state="revoked")
            else:
                current[entry.node_id] = MemberRecord(
                    entry.node_id, "revoked", entry.auth_pub, entry.fingerprint,
                    revoked_at=entry.revoked_at,
                )  # fmt: skip
        for name, key in authorized.items():
            kept = records.get(name)
            if kept is not None and kept.state == "enrolled" and _same_key(kept.auth_pub, key):
                current[name] = kept
            else:  # provisioned without the admin API, or a stale record
                current[name] = MemberRecord(name, "enrolled", key, auth_key_fingerprint(key))
        return current

    # -- queries -------------------------------------------------------------------------

    def list(self) -> Roster:
        """Every member by kit name with its SuperLink node, online state and last seen.

        Empty before the consortium is provisioned.
        """
        if not self.home.coordinator_kit.is_dir():
            return Roster([], False, [])
        authorized = self._authorized()
        reachable, nodes = self._nodes()
        current = self._current(authorized)
        views = [self._view(r, nodes, kit=True) for r in current.values()]
        views.sort(key=lambda v: (v.state != "enrolled", v.name.lower()))
        known = {r.flower_node_id for r in current.values()}
        unmatched = [
            n for n in nodes.values() if n.node_id not in known and n.status != "unregistered"
        ]
        return Roster(views, reachable, unmatched)

    def get(self, name: str) -> MemberView:
        """One member (enrolled or revoked); the SuperLink is asked only for a member.

        Raises:
            AdminNotFoundError: No member has had this name.
        """
        if self.home.coordinator_kit.is_dir():
            record = self._current(self._authorized()).get(name)
            if record is not None:
                return self._view(record, self._nodes()[1], kit=True)
        raise AdminNotFoundError(
            f"no member is named {name!r}",
            expected="a name from GET /v1/members",
            fix="list the members and use a name from the list",
        )

    # -- changes -------------------------------------------------------------------------

    def _register(self, record: MemberRecord) -> MemberRecord:
        """Register ``record``'s key with the SuperLink; the record with the outcome."""
        if not self._listening():
            return replace(record, superlink=PENDING)
        try:
            connection = ensure_connection(self.settings)
            with tempfile.TemporaryDirectory(prefix="member-key-") as folder:
                key_file = Path(folder) / "auth.pub"
                key_file.write_text(record.auth_pub.strip() + "\n", encoding="ascii")
                node_id = register_node_key(
                    public_key=key_file,
                    name=record.name,
                    connection=connection,
                    flwr_home=self.home.flwr_home,
                )
        except SuperLinkUnreachableError:
            logger.warning("members: SuperLink unreachable; registration pending")
            return replace(record, superlink=PENDING)
        return replace(record, flower_node_id=node_id, superlink=REGISTERED)

    def enrol(self, name: str, auth_pub: str) -> Enrolment:
        """Enrol a new member: its kit, its key authorised and registered, its record.

        When the SuperLink does not answer, the kit is written and the registration is
        left pending (``superlink: "pending"``; retry with :meth:`register`).

        Raises:
            AdminInvalidError: ``name`` or ``auth_pub`` is malformed.
            AdminConflictError: The name is taken, or the key is authorised or revoked.
        """
        try:
            (member,) = validate_node_ids([name])
            key = validate_member_keys({member: auth_pub}, (member,))[member]
        except ProvisioningError as err:
            raise AdminInvalidError(
                err.problem.replace("node id", "name"),
                expected="name: 1 to 64 characters from A-Z a-z 0-9 _ -; auth_pub: the "
                "text of the auth.pub the member made with `fedembed node keygen` (OpenSSH "
                "EC P-384)",
                fix="correct the name or auth_pub field",
            ) from None
        with self._lock:
            try:
                kit = enrol_member(self.home.kits, member, auth_pub=key)
            except EnrolmentConflictError as err:
                raise AdminConflictError(
                    err.problem,
                    expected=err.expected,
                    fix="choose another name, or have the member make a new key pair "
                    "(`fedembed node keygen`) and send its auth.pub",
                ) from None
            except ProvisioningError as err:
                raise AdminConflictError(
                    f"the consortium's kits cannot be changed ({err.problem})",
                    expected=err.expected,
                    fix=err.fix,
                ) from None
            record = MemberRecord(
                name=member,
                state="enrolled",
                auth_pub=key,
                fingerprint=auth_key_fingerprint(key),
                enrolled_at=json.loads((kit / "kit.json").read_text())["enrolled"],
            )
            try:
                record = self._register(record)
            except SuperNodeKeyInUseError:  # registered by hand: its node id is not known
                record = replace(record, superlink=NOT_KNOWN)
            except FedembedError as err:
                logger.warning("members: registration failed (%s); pending", err.problem)
                record = replace(record, superlink=PENDING)
            self._save(record)
        coordinator = load_coordinator_kit(self.home.coordinator_kit)
        logger.info("members: enrolled one member (superlink: %s)", record.superlink)
        return Enrolment(
            member=self._view(record, {}, kit=True),
            kit=kit,
            ca_fingerprint=coordinator.ca_fingerprint,
            authorized_nodes_sha256=sha256_file(coordinator.path / AUTHORIZED_NODES),
        )

    def register(self, name: str) -> MemberView:
        """Register an enrolled member's authorised key with the SuperLink.

        Raises:
            AdminNotFoundError: No enrolled member has this name.
            AdminConflictError: The SuperLink already holds the key.
            AdminUnavailableError: The SuperLink does not answer.
        """
        with self._lock:
            authorized = self._authorized()
            if name not in authorized:
                raise AdminNotFoundError(
                    f"no enrolled member is named {name!r}",
                    expected="a name from GET /v1/members whose state is enrolled",
                    fix="enrol the member first (POST /v1/members)",
                )
            record = self._current(authorized)[name]
            try:
                record = self._register(record)
            except SuperNodeKeyInUseError as err:
                raise AdminConflictError(
                    f"the SuperLink already holds the key of {name!r}",
                    expected=err.expected,
                    fix="nothing to do if the member was registered by hand; its node id "
                    "is not known to the admin API",
                ) from None
            if record.superlink == PENDING:
                raise AdminUnavailableError(
                    "the SuperLink does not answer; nothing was registered",
                    expected="a SuperLink whose Control API is at "
                    + self.settings.superlink_control,
                    fix="start the SuperLink (`fedembed coordinator superlink`) and retry",
                )
            self._save(record)
        return self._view(record, {}, kit=True)

    def revoke(self, name: str) -> MemberView:
        """Revoke a member: off the authorised list, unregistered, its key kept as revoked.

        Raises:
            AdminNotFoundError: No enrolled member has this name.
            AdminConflictError: It is already revoked, or it is the last member.
        """
        with self._lock:
            authorized = self._authorized()
            record = self._current(authorized).get(name)
            try:
                entry = revoke_member(self.home.kits, name)
            except MemberNotFoundError:
                if (
                    record is not None
                    and record.state == "revoked"
                    and record.superlink == PENDING
                    and record.flower_node_id is not None
                ):
                    retried = self._unregister(record)  # the SuperLink did not answer before
                    self._save(retried)
                    return self._view(retried, {}, kit=True)
                if record is not None and record.state == "revoked":
                    raise AdminConflictError(
                        f"{name!r} is already revoked",
                        expected="an enrolled member's name",
                        fix="nothing to do",
                    ) from None
                raise AdminNotFoundError(
                    f"no enrolled member is named {name!r}",
                    expected="a name from GET /v1/members whose state is enrolled",
                    fix="list the members and use a name from the list",
                ) from None
            except ProvisioningError as err:
                raise AdminConflictError(err.problem, expected=err.expected, fix=err.fix) from None
            base = record or MemberRecord(name, "enrolled", entry.auth_pub, entry.fingerprint)
            revoked = replace(base, state="revoked", revoked_at=entry.revoked_at)
            revoked = self._unregister(revoked)
            self._save(revoked)
        logger.info("members: revoked one member (superlink: %s)", revoked.superlink)
        return self._view(revoked, {}, kit=True)

    def _unregister(self, record: MemberRecord) -> MemberRecord:
        if record.flower_node_id is None:
            return record  # not registered through the admin API: the grid refuses it
        if not self._listening():
            return replace(record, superlink=PENDING)
        try:
            unregister_supernode(
                record.flower_node_id, ensure_connection(self.settings), self.home.flwr_home
            )
        except SuperNodeNotFoundError:
            pass  # already unregistered
        except SuperLinkUnreachableError:
            logger.warning("members: SuperLink unreachable; unregistration pending")
            return replace(record, superlink=PENDING)
        return replace(record, superlink=UNREGISTERED)
