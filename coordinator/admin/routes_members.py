"""``/v1/members``: list, enrol, register and revoke the consortium's members.

Any role lists members; only the admin role enrols, registers or revokes one. Every
change is recorded in the audit trail (names, fingerprints and node ids only) before the
answer is sent. An enrolment answers with the new kit's folder (ship it to the member)
and the digests the members compare out of band: the CA fingerprint and the SHA-256 of
the coordinator kit's ``authorized_nodes.json``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Path
from pydantic import BaseModel, ConfigDict, Field

from coordinator.admin.deps import AdminDep, MembersDep, ReaderDep, TrailDep
from coordinator.admin.member_records import MemberView
from coordinator.admin.members import MemberRoster
from coordinator.admin.settings import AdminSettings
from deployment.flower_nodes import SuperNodeInfo

__all__ = [
    "EnrolRequest",
    "EnrolledOut",
    "MemberList",
    "MemberOut",
    "SuperNodeOut",
    "install",
    "router",
]

router = APIRouter(prefix="/v1/members", tags=["members"])

MEMBER_NAME = r"^[A-Za-z0-9_-]{1,64}$"
MemberName = Annotated[str, Path(pattern=MEMBER_NAME, description="The member's kit name.")]


class EnrolRequest(BaseModel):
    """A member to enrol."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=MEMBER_NAME, description="The new member's kit name.")
    auth_pub: str = Field(
        min_length=1,
        max_length=1000,
        description="The text of the auth.pub the member made with `fedembed node keygen` "
        "(OpenSSH EC P-384 public key); its auth.key never leaves the member.",
    )


class MemberOut(BaseModel):
    """One member: its kit name, its key's fingerprint and its SuperLink node."""

    name: str
    state: str = Field(description="enrolled or revoked.")
    fingerprint: str = Field(description="SHA256:... of its auth.pub (as `node keygen` prints).")
    flower_node_id: str | None = Field(description="The SuperLink's node id (null: not known).")
    superlink: str = Field(
        description="registered, pending (the SuperLink did not answer), unregistered, "
        "or not known (registered without the admin API)."
    )
    status: str | None = Field(description="registered, online, offline or unregistered.")
    online: bool | None
    last_seen: str | None
    enrolled_at: str | None
    revoked_at: str | None
    kit: str | None = Field(description="Its kit folder on the coordinator host.")

    @classmethod
    def of(cls, view: MemberView) -> MemberOut:
        """The answer for ``view``."""
        node_id = None if view.flower_node_id is None else str(view.flower_node_id)
        return cls(
            name=view.name,
            state=view.state,
            fingerprint=view.fingerprint,
            flower_node_id=node_id,
            superlink=view.superlink,
            status=view.status,
            online=view.online,
            last_seen=view.last_seen,
            enrolled_at=view.enrolled_at,
            revoked_at=view.revoked_at,
            kit=view.kit,
        )


class SuperNodeOut(BaseModel):
    """A SuperLink node that belongs to no member the admin API knows."""

    node_id: str
    status: str
    online: bool
    last_seen: str | None

    @classmethod
    def of(cls, node: SuperNodeInfo) -> SuperNodeOut:
        """The answer for ``node``."""
        return cls(
            node_id=str(node.node_id),
            status=node.status,
            online=node.online,
            last_seen=node.last_seen,
        )


class MemberList(BaseModel):
    """Every member, and the SuperLink's nodes that match none."""

    members: list[MemberOut]
    superlink_reachable: bool
    unmatched_nodes: list[SuperNodeOut]


class EnrolledOut(BaseModel):
    """A new member and the digests to compare out of band."""

    member: MemberOut
    kit: str = Field(description="The new kit's folder: ship it to the member.")
    ca_fingerprint: str
    authorized_nodes_sha256: str
    next: str


def install(app: FastAPI, settings: AdminSettings) -> None:
    """The member roster over the consortium home."""
    app.state.members = MemberRoster(settings)


@router.get("", response_model=MemberList)
def list_members(caller: ReaderDep, roster: MembersDep) -> MemberList:
    """Every member by kit name, with its Flower node id, online state and last seen."""
    listed = roster.list()
    return MemberList(
        members=[MemberOut.of(v) for v in listed.members],
        superlink_reachable=listed.superlink_reachable,
        unmatched_nodes=[SuperNodeOut.of(n) for n in listed.unmatched_nodes],
    )


@router.get("/{name}", response_model=MemberOut)
def get_member(name: MemberName, caller: ReaderDep, roster: MembersDep) -> MemberOut:
    """One member (enrolled or revoked)."""
    return MemberOut.of(roster.get(name))


@router.post("", status_code=201, response_model=EnrolledOut)
def enrol_member(
    body: EnrolRequest, caller: AdminDep, roster: MembersDep, trail: TrailDep
) -> EnrolledOut:
    """Enrol a member into the running consortium; nothing else is regenerated.

    Writes its kit, authorises its key and registers it with the SuperLink.
    """
    enrolled = roster.enrol(body.name, body.auth_pub)
    member = enrolled.member
    trail.record(
        caller,
        "member.enrol",
        member.name,
        detail={
            "fingerprint": member.fingerprint,
            "flower_node_id": member.flower_node_id,
            "superlink": member.superlink,
            "authorized_nodes_sha256": enrolled.authorized_nodes_sha256,
        },
    )
    return EnrolledOut(
        member=MemberOut.of(member),
        kit=str(enrolled.kit),
        ca_fingerprint=enrolled.ca_fingerprint,
        authorized_nodes_sha256=enrolled.authorized_nodes_sha256,
        next="ship the kit folder to the member; it runs `fedembed node install-auth-key`, "
        "and the key-holding member seals the CKKS secret to it with `fedembed node "
        "ckks-seal` (the member installs it with `fedembed node ckks-install`)",
    )


@router.post("/{name}/register", response_model=MemberOut)
def register_member(
    name: MemberName, caller: AdminDep, roster: MembersDep, trail: TrailDep
) -> MemberOut:
    """Register an enrolled member's key with the SuperLink.

    For a member provisioned without the admin API, or an enrolment whose registration
    is pending.
    """
    member = roster.register(name)
    trail.record(
        caller,
        "member.register",
        member.name,
        detail={"fingerprint": member.fingerprint, "flower_node_id": member.flower_node_id},
    )
    return MemberOut.of(member)


@router.post("/{name}/revoke", response_model=MemberOut)
def revoke_member(
    name: MemberName, caller: AdminDep, roster: MembersDep, trail: TrailDep
) -> MemberOut:
    """Revoke a member: it can no longer join a run and its replies are refused."""
    member = roster.revoke(name)
    trail.record(
        caller,
        "member.revoke",
        member.name,
        detail={
            "fingerprint": member.fingerprint,
            "flower_node_id": member.flower_node_id,
            "superlink": member.superlink,
        },
    )
    return MemberOut.of(member)
