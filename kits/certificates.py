"""X.509 material of a consortium: the root CA and the SuperLink's server certificate.

EC P-384 keys, a self-signed root CA and a server certificate for the SuperLink's
address (IP address or DNS name), both valid from a few minutes in the past to allow for
clock skew between parties.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kits.layout import ProvisioningError

__all__ = [
    "cert_fingerprint",
    "make_ca",
    "make_server_cert",
    "pem_cert",
    "pem_private",
    "sign_server_cert",
    "validate_host",
]

_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_CLOCK_SKEW = dt.timedelta(minutes=5)


def validate_host(host: str) -> x509.GeneralName:
    """The SuperLink address as a subject alternative name (IP address or DNS name)."""
    if not isinstance(host, str) or not host:
        raise ProvisioningError(
            f"superlink_host is {host!r}",
            expected="the IP address or DNS name the SuperNodes connect to",
            fix="pass e.g. superlink_host='coordinator.example.org'",
        )
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        name = host[:-1] if host.endswith(".") else host
        if len(name) > 253 or not all(_HOST_LABEL.fullmatch(p) for p in name.split(".")):
            raise ProvisioningError(
                f"superlink_host {host!r} is neither an IP address nor a valid DNS name",
                expected="an IP address or a DNS name such as coordinator.example.org",
                fix="pass the host name without scheme, port or path",
            ) from None
        return x509.DNSName(name.lower())
    if address.is_unspecified:
        raise ProvisioningError(
            f"superlink_host {host!r} is the unspecified address",
            expected="the address the SuperNodes dial, not the one the SuperLink binds",
            fix="pass the coordinator's reachable IP address or DNS name",
        )
    return x509.IPAddress(address)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fedembed consortium"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def make_ca(
    consortium_id: str, now: dt.datetime, days: int
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A self-signed root CA (EC P-384) valid for ``days`` from ``now`` (minus clock skew)."""
    key = ec.generate_private_key(ec.SECP384R1())
    name = _name(f"fedembed consortium root CA {consortium_id[:8]}")
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, hashes.SHA384())
    )
    return key, cert


def make_server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    host: str,
    host_name: x509.GeneralName,
    now: dt.datetime,
    days: int,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The SuperLink's TLS key and certificate for ``host`` (and loopback), signed by the CA."""
    sans: list[x509.GeneralName] = [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.DNSName("localhost"),
    ]
    if host_name not in sans:
        sans.append(host_name)
    return sign_server_cert(ca_key, ca_cert, host, sans, now=now, days=days)


def sign_server_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    common_name: str,
    sans: Sequence[x509.GeneralName],
    *,
    now: dt.datetime,
    days: int,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh EC P-384 key and its serverAuth certificate for ``sans``, signed by the CA.

    Every name a client dials must be in ``sans`` (clients check it, RFC 6125); the
    certificate is valid from five minutes before ``now`` (clock skew) for ``days``.
    """
    key = ec.generate_private_key(ec.SECP384R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _CLOCK_SKEW)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA384())
    )
    return key, cert


def pem_private(key: ec.EllipticCurvePrivateKey) -> bytes:
    """PEM (PKCS#8, unencrypted: the kit file is mode 0600) of a private key."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def pem_cert(cert: x509.Certificate) -> bytes:
    """PEM of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of a certificate, hex."""
    return cert.fingerprint(hashes.SHA256()).hex()
