"""Threat: the provisioner and the coordinator's operator, who relays the key ceremony.

Neither may ever hold a CKKS secret that decrypts member updates: provisioning writes no
CKKS key pair, the bundles the operator relays open only with a member's kit key, and a
bundle the operator forges, alters or misdirects is refused (one opaque error) without
changing the member's kit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tenseal as ts
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from crypto.ckks_aggregation import (
    decrypt_vector,
    encrypt_vector,
    make_contexts,
    sum_encrypted,
)
from crypto.ckks_context import TENSEAL_ERRORS, context_fingerprint
from crypto.ckks_search_key import KEY_FILE_MAGIC, load_ckks_key
from crypto.key_wrapping import KeyUnwrapError, seal, unseal
from kits import (
    BundleRefusedError,
    CeremonyBundles,
    ProvisionResult,
    ckks_keygen,
    generate_auth_key,
    install_auth_key,
    install_ckks_public,
    install_ckks_secret,
    load_coordinator_kit,
    load_node_kit,
    provision,
)
from kits.ckks_bundle import (
    COORDINATOR_RECIPIENT,
    CkksBundle,
    secret_associated_data,
    write_bundle,
)

NODES = ["hospital-a", "bank_b", "Insurer3"]
HOLDER = "hospital-a"
VICTIM = "bank_b"
SEARCH_KEY = "gateway/ckks_search.key"


@pytest.fixture
def consortium(tmp_path: Path) -> ProvisionResult:
    return provision(tmp_path / "kits", node_ids=NODES)


@pytest.fixture
def bundles(consortium: ProvisionResult, tmp_path: Path) -> CeremonyBundles:
    """The key holder's bundles, now in the coordinator operator's hands (the relay)."""
    return ckks_keygen(consortium.node_dirs[HOLDER], tmp_path / "relay")


def _holds_ckks_secret(data: bytes) -> bool:
    """Whether bytes parse as a TenSEAL context with a secret key (raw or as a key file)."""
    candidates = [data]
    if data.startswith(KEY_FILE_MAGIC):  # the gateway's search-key file: header || context
        candidates.append(data[len(KEY_FILE_MAGIC) + 4 :])
    for candidate in candidates:
        try:
            if ts.context_from(candidate).is_private():
                return True
        except TENSEAL_ERRORS:  # bytes that are not a context
            continue
    return False


def _snapshot(kit: Path) -> dict[str, str]:
    return {
        p.relative_to(kit).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(kit.rglob("*"))
        if p.is_file()
    }


def _rewrite(path: Path, **changes: object) -> None:
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def test_provisioning_writes_no_ckks_secret(consortium: ProvisionResult) -> None:
    # Execute: every file the provisioner wrote, in every part
    files = [p for p in consortium.out_dir.rglob("*") if p.is_file()]
    holding = {
        p.relative_to(consortium.out_dir).as_posix()
        for p in files
        if _holds_ckks_secret(p.read_bytes())
    }
    # Assert: the only CKKS secret is the gateway's own search key (index collections),
    # which is another key pair than any aggregation key
    assert len(files) > 10
    assert holding == {SEARCH_KEY}
    assert not any(p.name.startswith("ckks_secret") for p in files)


def test_relayed_bundles_hold_no_usable_secret(
    consortium: ProvisionResult, bundles: CeremonyBundles
) -> None:
    # Prepare: everything the coordinator's operator sees after relaying and installing
    install_ckks_public(consortium.coordinator_dir, bundles.public_bundle)
    seen = [p for p in bundles.public_bundle.parent.iterdir()] + [
        p for p in consortium.coordinator_dir.iterdir()
    ]
    # Execute
    payloads = [
        base64.b64decode(json.loads(p.read_text())["payload"])
        for p in seen
        if p.suffix == ".json" and "bundle" in p.name
    ]
    # Assert: no file and no bundle payload is a secret context
    assert len(payloads) == len(NODES)
    assert not any(_holds_ckks_secret(p.read_bytes()) for p in seen)
    assert not any(_holds_ckks_secret(payload) for payload in payloads)
    search = load_ckks_key(consortium.gateway_dir / "ckks_search.key")
    assert context_fingerprint(search.to_bytes()) != bundles.ckks_fingerprint


def _forged_bundle(
    consortium: ProvisionResult, path: Path, *, sender: str, signer: ec.EllipticCurvePrivateKey
) -> None:
    """The coordinator's own key pair, sealed to the victim and signed with a non-member key."""
    node = load_node_kit(consortium.node_dirs[VICTIM])
    secret, public = make_contexts(node.ckks_parameters)
    fingerprint = context_fingerprint(public)
    victim_key = serialization.load_ssh_public_key(node.auth_public_key.encode())
    assert isinstance(victim_key, ec.EllipticCurvePublicKey)
    sealed = seal(
        victim_key,
        secret,
        associated_data=secret_associated_data(
            consortium_id=node.consortium_id,
            recipient=VICTIM,
            sender=sender,
            ckks_fingerprint=fingerprint,
        ),
    )
    bundle = CkksBundle(
        kind="secret",
        consortium_id=node.consortium_id,
        sender=sender,
        recipient=VICTIM,
        ckks=node.ckks_parameters.as_dict(),
        ckks_fingerprint=fingerprint,
        payload=sealed,
    )
    write_bundle(path, bundle, signer)


def _tampered_payload(source: Path, target: Path) -> None:
    document = json.loads(source.read_text())
    payload = bytearray(base64.b64decode(document["payload"]))
    payload[len(payload) // 2] ^= 0x01
    document["payload"] = base64.b64encode(bytes(payload)).decode()
    target.write_text(json.dumps(document))


def test_forged_altered_or_misdirected_bundles_are_refused(
    consortium: ProvisionResult, bundles: CeremonyBundles, tmp_path: Path
) -> None:
    # Prepare: what a deviating coordinator operator can hand the victim instead
    operator_key = ec.generate_private_key(ec.SECP384R1())
    attacks = tmp_path / "attacks"
    attacks.mkdir()
    genuine = bundles.secret_bundles[VICTIM]
    _forged_bundle(
        consortium, attacks / "own-pair-as-holder.json", sender=HOLDER, signer=operator_key
    )
    _forged_bundle(
        consortium,
        attacks / "own-pair-as-itself.json",
        sender="coordinator-op",
        signer=operator_key,
    )
    _tampered_payload(genuine, attacks / "tampered-payload.json")
    (attacks / "tampered-fingerprint.json").write_text(genuine.read_text())
    _rewrite(attacks / "tampered-fingerprint.json", ckks_fingerprint="00" * 32)
    (attacks / "readdressed.json").write_text(bundles.secret_bundles["Insurer3"].read_text())
    _rewrite(attacks / "readdressed.json", recipient=VICTIM)
    (attacks / "not-json.json").write_bytes(b"\x00garbage")
    cases = [
        *sorted(attacks.iterdir()),
        bundles.secret_bundles["Insurer3"],  # another member's bundle, as is
        bundles.public_bundle,  # the public bundle where a secret one belongs
    ]
    before = _snapshot(consortium.node_dirs[VICTIM])
    messages = set()
    # Execute
    for case in cases:
        with pytest.raises(BundleRefusedError) as info:
            install_ckks_secret(consortium.node_dirs[VICTIM], case)
        messages.add((info.value.problem, info.value.expected, info.value.fix))
    # Assert: one opaque error, kit unchanged, the genuine bundle still installs
    assert len(cases) == 8
    assert len(messages) == 1
    assert _snapshot(consortium.node_dirs[VICTIM]) == before
    assert load_node_kit(consortium.node_dirs[VICTIM]).ckks_fingerprint is None
    assert install_ckks_secret(consortium.node_dirs[VICTIM], genuine) == bundles.ckks_fingerprint


def test_forged_public_bundle_is_refused(
    consortium: ProvisionResult, bundles: CeremonyBundles, tmp_path: Path
) -> None:
    # Prepare: a public context the key holder did not sign, and a secret one as "public"
    node = load_node_kit(consortium.node_dirs[HOLDER])
    secret, public = make_contexts(node.ckks_parameters)

    def public_bundle(payload: bytes) -> CkksBundle:
        return CkksBundle(
            kind="public",
            consortium_id=node.consortium_id,
            sender=HOLDER,
            recipient=COORDINATOR_RECIPIENT,
            ckks=node.ckks_parameters.as_dict(),
            ckks_fingerprint=context_fingerprint(public),
            payload=payload,
        )

    forged = tmp_path / "forged.json"  # signed with the operator's own key
    write_bundle(forged, public_bundle(public), ec.generate_private_key(ec.SECP384R1()))
    holder_key = serialization.load_ssh_private_key(node.auth_key_path.read_bytes(), None)
    assert isinstance(holder_key, ec.EllipticCurvePrivateKey)
    leaked = tmp_path / "secret-as-public.json"  # the holder's slip: a secret as "public"
    write_bundle(leaked, public_bundle(secret), holder_key)
    before = _snapshot(consortium.coordinator_dir)
    # Execute / Assert
    for case in (forged, leaked, bundles.secret_bundles[VICTIM]):
        with pytest.raises(BundleRefusedError):
            install_ckks_public(consortium.coordinator_dir, case)
    assert _snapshot(consortium.coordinator_dir) == before
    assert install_ckks_public(consortium.coordinator_dir, bundles.public_bundle) == (
        bundles.ckks_fingerprint
    )


def test_aggregation_after_the_ceremony(
    consortium: ProvisionResult, bundles: CeremonyBundles
) -> None:
    # Prepare
    for member, bundle in bundles.secret_bundles.items():
        install_ckks_secret(consortium.node_dirs[member], bundle)
    install_ckks_public(consortium.coordinator_dir, bundles.public_bundle)
    a = load_node_kit(consortium.node_dirs[VICTIM])
    b = load_node_kit(consortium.node_dirs["Insurer3"])
    coordinator = load_coordinator_kit(consortium.coordinator_dir)
    x = np.random.default_rng(25).normal(size=300)
    y = np.random.default_rng(26).normal(size=300)
    # Execute: two nodes encrypt, the coordinator sums with the public context only
    total = sum_encrypted(
        [encrypt_vector(x, a.ckks_secret_context), encrypt_vector(y, b.ckks_secret_context)],
        coordinator.ckks_public_context,
    )
    # Assert: a member decrypts the sum
    np.testing.assert_allclose(decrypt_vector(total, a.ckks_secret_context, 300), x + y, atol=1e-4)


def _private_keys_under(root: Path) -> list[ec.EllipticCurvePrivateKey]:
    """Every EC private key (OpenSSH or PEM) in any file under ``root``."""
    keys = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        data = path.read_bytes()
        for load in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
            try:
                key = load(data, None)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                continue
            if isinstance(key, ec.EllipticCurvePrivateKey):
                keys.append(key)
            break
    return keys


def _opened(bundles: CeremonyBundles, keys: list[ec.EllipticCurvePrivateKey]) -> int:
    """How many (sealed bundle, key) pairs open: what an operator holding ``keys`` reads."""
    count = 0
    for bundle in bundles.secret_bundles.values():
        document = json.loads(bundle.read_text())
        associated = secret_associated_data(
            consortium_id=document["consortium_id"],
            recipient=document["recipient"],
            sender=document["sender"],
            ckks_fingerprint=document["ckks_fingerprint"],
        )
        for key in keys:
            try:
                unseal(key, base64.b64decode(document["payload"]), associated_data=associated)
            except KeyUnwrapError:
                continue
            count += 1
    return count


def test_member_made_node_keys_keep_bundles_closed_to_the_provisioner(tmp_path: Path) -> None:
    """The provisioner is also the coordinator's operator: it keeps everything it wrote
    and relays every bundle, yet opens none when members made their own node keys."""
    # Prepare
    premises = {node: generate_auth_key(tmp_path / "premises" / node) for node in NODES}
    result = provision(
        tmp_path / "kits",
        node_ids=NODES,
        node_keys={node: public.read_text() for node, public in premises.items()},
    )
    provisioner_copy = shutil.copytree(result.out_dir, tmp_path / "provisioner-copy")
    for node, public in premises.items():
        install_auth_key(result.node_dirs[node], public.parent / "auth.key")
    bundles = ckks_keygen(result.node_dirs[HOLDER], tmp_path / "relay")
    # Execute
    keys = _private_keys_under(provisioner_copy) + _private_keys_under(tmp_path / "relay")
    # Assert: the scan finds the keys it can (CA and TLS server keys), none opens a bundle
    assert len(keys) == 2
    assert _opened(bundles, keys) == 0
    # while each member opens its own
    assert _opened(bundles, _private_keys_under(tmp_path / "premises")) == len(NODES) - 1


def test_provisioner_made_node_keys_open_the_bundles(
    consortium: ProvisionResult, bundles: CeremonyBundles, tmp_path: Path
) -> None:
    """The limit docs/key_custody.md states: node keys made by provisioning let a
    provisioner that kept them open the bundles it relays (use --node-key)."""
    copy = shutil.copytree(consortium.out_dir, tmp_path / "provisioner-copy")
    assert _opened(bundles, _private_keys_under(copy)) == len(NODES) - 1
