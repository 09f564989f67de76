"""Kits: layout, provisioning and the checked loader.

Kits: their layout, the provisioning that writes them, the member-side CKKS key
ceremony that completes them, and the checked loader that every process (SuperLink,
SuperNode, both Flower apps, the gateway) reads them through.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from kits.certificates import (
        cert_fingerprint,
        make_ca,
        make_server_cert,
        pem_cert,
        pem_private,
        sign_server_cert,
        validate_host,
    )
    from kits.ckks_bundle import BundleRefusedError
    from kits.ckks_ceremony import (
        CeremonyBundles,
        ckks_keygen,
        ckks_seal_for,
        install_ckks_public,
        install_ckks_secret,
        run_ckks_ceremony,
    )
    from kits.enrolment import (
        EnrolmentConflictError,
        MemberNotFoundError,
        RevokedMember,
        enrol_member,
        revoke_member,
        revoked_members,
    )
    from kits.layout import sha256_file
    from kits.member_list import accept_member_list
    from kits.node_keys import auth_key_fingerprint, generate_auth_key, install_auth_key
    from kits.provisioning import (
        DCPE_KEYRING,
        DEFAULT_DCPE_BETA,
        KIT_FORMAT,
        CoordinatorKit,
        GatewayKit,
        KitPermissionWarning,
        NodeKit,
        ProvisioningError,
        ProvisionResult,
        load_coordinator_kit,
        load_gateway_kit,
        load_node_kit,
        provision,
        validate_node_ids,
    )
    from kits.service_certificates import (
        ServiceCertificate,
        issue_service_certificate,
        make_service_cert,
    )

_SUBMODULE: dict[str, str] = {
    "auth_key_fingerprint": "node_keys",
    "generate_auth_key": "node_keys",
    "install_auth_key": "node_keys",
    "BundleRefusedError": "ckks_bundle",
    "CeremonyBundles": "ckks_ceremony",
    "ckks_keygen": "ckks_ceremony",
    "ckks_seal_for": "ckks_ceremony",
    "EnrolmentConflictError": "enrolment",
    "MemberNotFoundError": "enrolment",
    "RevokedMember": "enrolment",
    "accept_member_list": "member_list",
    "enrol_member": "enrolment",
    "revoke_member": "enrolment",
    "revoked_members": "enrolment",
    "install_ckks_public": "ckks_ceremony",
    "install_ckks_secret": "ckks_ceremony",
    "run_ckks_ceremony": "ckks_ceremony",
    "CoordinatorKit": "provisioning",
    "DCPE_KEYRING": "provisioning",
    "DEFAULT_DCPE_BETA": "provisioning",
    "GatewayKit": "provisioning",
    "KIT_FORMAT": "provisioning",
    "KitPermissionWarning": "provisioning",
    "NodeKit": "provisioning",
    "ProvisionResult": "provisioning",
    "ProvisioningError": "provisioning",
    "cert_fingerprint": "certificates",
    "load_coordinator_kit": "provisioning",
    "load_gateway_kit": "provisioning",
    "load_node_kit": "provisioning",
    "make_ca": "certificates",
    "make_server_cert": "certificates",
    "pem_cert": "certificates",
    "pem_private": "certificates",
    "provision": "provisioning",
    "ServiceCertificate": "service_certificates",
    "issue_service_certificate": "service_certificates",
    "make_service_cert": "service_certificates",
    "sha256_file": "layout",
    "sign_server_cert": "certificates",
    "validate_host": "certificates",
    "validate_node_ids": "provisioning",
}

__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

__all__ = [
    "DCPE_KEYRING",
    "DEFAULT_DCPE_BETA",
    "KIT_FORMAT",
    "BundleRefusedError",
    "CeremonyBundles",
    "CoordinatorKit",
    "EnrolmentConflictError",
    "GatewayKit",
    "KitPermissionWarning",
    "MemberNotFoundError",
    "NodeKit",
    "ProvisionResult",
    "ProvisioningError",
    "RevokedMember",
    "ServiceCertificate",
    "accept_member_list",
    "auth_key_fingerprint",
    "cert_fingerprint",
    "ckks_keygen",
    "ckks_seal_for",
    "enrol_member",
    "generate_auth_key",
    "install_auth_key",
    "install_ckks_public",
    "install_ckks_secret",
    "issue_service_certificate",
    "load_coordinator_kit",
    "load_gateway_kit",
    "load_node_kit",
    "make_ca",
    "make_server_cert",
    "make_service_cert",
    "pem_cert",
    "pem_private",
    "provision",
    "revoke_member",
    "revoked_members",
    "run_ckks_ceremony",
    "sha256_file",
    "sign_server_cert",
    "validate_host",
    "validate_node_ids",
]
