"""CKKS key bundles: what the key-holding member sends, signed, through the coordinator.

A bundle is a JSON file the coordinator's operator only relays. It carries either the
consortium's CKKS public context (for the coordinator) or the CKKS secret context sealed
to one member's kit key (:func:`crypto.key_wrapping.seal`, associated data binding the
consortium id, recipient, sender and CKKS fingerprint). The sender signs the header and
the payload's SHA-384 with its kit auth key (ECDSA P-384, SHA-384); a recipient accepts
it only from a sender on its kit's authorised node list.

Every reason to refuse a bundle (not JSON, other consortium or recipient, unknown sender,
bad signature, altered payload, a context that does not match its fingerprint) is one
opaque :class:`BundleRefusedError`.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kits.layout import ProvisioningError

__all__ = [
    "BUNDLE_FORMAT",
    "COORDINATOR_RECIPIENT",
    "BundleRefusedError",
    "CkksBundle",
    "read_bundle",
    "secret_associated_data",
    "write_bundle",
]

BUNDLE_FORMAT: Final = "fedembed-ckks-bundle/1"
# Not a valid node id, so no member can be the recipient of the public bundle.
COORDINATOR_RECIPIENT: Final = "(coordinator)"
KINDS: Final = ("public", "secret")
_HEADER_KEYS: Final = (
    "format",
    "kind",
    "consortium_id",
    "sender",
    "recipient",
    "ckks",
    "ckks_fingerprint",
    "payload_sha384",
)


class BundleRefusedError(ProvisioningError):
    """A CKKS key bundle is refused (one opaque error for every cause)."""

    def __init__(self) -> None:
        super().__init__(
            "the CKKS key bundle was refused",
            expected="a bundle for this kit, signed by an authorised member's kit key, "
            "unaltered since the key holder wrote it",
            fix="ask the key-holding member to run `fedembed node ckks-keygen` again and "
            "relay the bundle written for this kit",
        )


@dataclass(frozen=True)
class CkksBundle:
    """A bundle's fields (``payload`` is the sealed secret or the public context)."""

    kind: str
    consortium_id: str
    sender: str
    recipient: str
    ckks: Mapping[str, Any]
    ckks_fingerprint: str
    payload: bytes

    def header(self) -> dict[str, Any]:
        """The signed fields: everything but the payload, which enters by its digest."""
        return {
            "format": BUNDLE_FORMAT,
            "kind": self.kind,
            "consortium_id": self.consortium_id,
            "sender": self.sender,
            "recipient": self.recipient,
            "ckks": dict(self.ckks),
            "ckks_fingerprint": self.ckks_fingerprint,
            "payload_sha384": hashlib.sha384(self.payload).hexdigest(),
        }


def secret_associated_data(
    *, consortium_id: str, recipient: str, sender: str, ckks_fingerprint: str
) -> bytes:
    """The associated data a sealed CKKS secret context is bound to."""
    return _canonical(
        {
            "purpose": "fedembed CKKS secret context",
            "consortium_id": consortium_id,
            "recipient": recipient,
            "sender": sender,
            "ckks_fingerprint": ckks_fingerprint,
        }
    )


def _canonical(value: Mapping[str, Any]) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")


def write_bundle(path: Path, bundle: CkksBundle, signer: ec.EllipticCurvePrivateKey) -> None:
    """Sign ``bundle`` with the sender's kit auth key and write it to ``path`` (new file)."""
    header = bundle.header()
    signature = signer.sign(_canonical(header), ec.ECDSA(hashes.SHA384()))
    document = {
        **header,
        "payload": base64.b64encode(bundle.payload).decode("ascii"),
        "signature": base64.b64encode(signature).decode("ascii"),
    }
    with path.open("x", encoding="utf-8") as handle:
        json.dump(document, handle, sort_keys=True)
        handle.write("\n")


def read_bundle(
    path: Path,
    *,
    kind: str,
    consortium_id: str,
    recipient: str,
    authorized_nodes: Mapping[str, str],
) -> CkksBundle:
    """Read and verify a bundle addressed to ``recipient`` in ``consortium_id``.

    Checks the format and kind, the consortium and recipient, that the sender is on
    ``authorized_nodes`` (node id -> OpenSSH public key) and is not the recipient, the
    payload digest and the sender's signature.

    Raises:
        BundleRefusedError: For every failure (one opaque error).
    """
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
        if not isinstance(document, dict):
            raise BundleRefusedError()
        payload = base64.b64decode(document["payload"], validate=True)
        signature = base64.b64decode(document["signature"], validate=True)
        bundle = CkksBundle(
            kind=str(document["kind"]),
            consortium_id=str(document["consortium_id"]),
            sender=str(document["sender"]),
            recipient=str(document["recipient"]),
            ckks=dict(document["ckks"]),
            ckks_fingerprint=str(document["ckks_fingerprint"]),
            payload=payload,
        )
        header = {key: document[key] for key in _HEADER_KEYS}
        if (
            header != bundle.header()
            or bundle.kind != kind
            or bundle.consortium_id != consortium_id
            or bundle.recipient != recipient
            or bundle.sender == recipient
            or bundle.sender not in authorized_nodes
        ):
            raise BundleRefusedError()
        sender_key = serialization.load_ssh_public_key(
            authorized_nodes[bundle.sender].encode("ascii")
        )
        if not isinstance(sender_key, ec.EllipticCurvePublicKey):
            raise BundleRefusedError()
        sender_key.verify(signature, _canonical(header), ec.ECDSA(hashes.SHA384()))
    except BundleRefusedError:
        raise
    except (
        OSError,
        UnicodeError,
        ValueError,
        KeyError,
        TypeError,
        InvalidSignature,
        UnsupportedAlgorithm,
    ):
        raise BundleRefusedError() from None
    return bundle
