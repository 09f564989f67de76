"""TLS certificates for the index services (store, gateway), signed by the consortium CA.

The provisioning CA (``kits/admin/ca.key``, ``ca.crt``) that signs the SuperLink's
certificate signs the store's and the gateway's too: every node kit already holds
``ca.crt``, so nodes verify the gateway with it, and the gateway verifies the store with
it. A certificate names every host name and IP address its clients dial in its
subjectAltName (clients check the name, RFC 6125); EC P-384, serverAuth only.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from crypto.secret_files import read_secret_file, write_secret_file
from kits.certificates import (
    cert_fingerprint,
    pem_cert,
    pem_private,
    sign_server_cert,
    validate_host,
)
from kits.layout import CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY, ProvisioningError

__all__ = ["ServiceCertificate", "issue_service_certificate", "make_service_cert"]


@dataclass(frozen=True)
class ServiceCertificate:
    """Where :func:`issue_service_certificate` wrote a service's TLS files."""

    cert: Path  # server.crt
    key: Path  # server.key (mode 0600)
    ca: Path  # ca.crt: what the service's clients trust
    hosts: tuple[str, ...]
    fingerprint_sha256: str


def _san(host: str) -> x509.GeneralName:
    try:
        return validate_host(host)
    except ProvisioningError:
        raise ProvisioningError(
            f"TLS host {host!r} is neither an IP address nor a valid DNS name",
            expected="each host name or IP address clients dial, e.g. index-store or 10.0.0.5",
            fix="pass --host once per name, without scheme, port or path",
        ) from None


def make_service_cert(
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    hosts: Sequence[str],
    *,
    now: dt.datetime | None = None,
    days: int = 365,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A TLS server key and certificate for ``hosts`` (every one in subjectAltName).

    Raises:
        ProvisioningError: No host, or one that is neither an IP address nor a DNS name.
    """
    if not hosts:
        raise ProvisioningError(
            "no TLS host given",
            expected="at least one host name or IP address clients dial",
            fix="pass --host NAME (repeat for each name)",
        )
    sans: list[x509.GeneralName] = []
    for host in hosts:
        name = _san(host)
        if name not in sans:
            sans.append(name)
    start = (now or dt.datetime.now(dt.UTC)).replace(microsecond=0)
    return sign_server_cert(ca_key, ca_cert, hosts[0][:64], sans, now=start, days=days)


def _load_ca(ca_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    try:
        cert = x509.load_pem_x509_certificate((ca_dir / CA_CERT).read_bytes())
        key = load_pem_private_key(read_secret_file(ca_dir / CA_KEY, what="CA key"), password=None)
    except (OSError, ValueError) as exc:
        raise ProvisioningError(
            f"the consortium CA in {ca_dir} cannot be read ({type(exc).__name__}: {exc})",
            expected=f"{CA_CERT} and {CA_KEY} written by `fedembed coordinator provision`",
            fix="pass --ca-dir <kits>/admin (the admin's folder, kept offline)",
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
        raise ProvisioningError(
            f"{ca_dir / CA_KEY} is not the key of {ca_dir / CA_CERT}",
            expected="the CA key and certificate of one provisioning",
            fix="pass the admin folder of the consortium's provisioning",
        )
    return key, cert


def _write_public(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(path, 0o644)  # the umask may have removed bits from a public file


def issue_service_certificate(
    ca_dir: Path,
    out_dir: Path,
    hosts: Sequence[str],
    *,
    days: int = 365,
) -> ServiceCertificate:
    """Write ``server.crt``, ``server.key`` (0600) and ``ca.crt`` for an index service.

    Args:
        ca_dir: The provisioning's admin folder (``ca.key``, ``ca.crt``).
        out_dir: A new or empty folder (never overwritten).
        hosts: Every host name and IP address clients use in the service's URL.
        days: Validity (1 to 3650 days).

    Raises:
        ProvisioningError: Bad hosts or days, an unreadable CA, or ``out_dir`` in use.
    """
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 3650:
        raise ProvisioningError(
            f"days is {days!r}",
            expected="between 1 and 3650 days",
            fix="pass e.g. --days 365 and issue a new certificate before it expires",
        )
    ca_key, ca_cert = _load_ca(ca_dir)
    key, cert = make_service_cert(ca_key, ca_cert, hosts, days=days)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ProvisioningError(
            f"{out_dir} already exists and is not an empty folder",
            expected="a new folder for the certificate and its key (never overwritten)",
            fix="choose another --out, or move the old certificate away",
        )
    out_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_secret_file(out_dir / SERVER_KEY, pem_private(key))
    _write_public(out_dir / SERVER_CERT, pem_cert(cert))
    _write_public(out_dir / CA_CERT, pem_cert(ca_cert))
    return ServiceCertificate(
        cert=out_dir / SERVER_CERT,
        key=out_dir / SERVER_KEY,
        ca=out_dir / CA_CERT,
        hosts=tuple(hosts),
        fingerprint_sha256=cert_fingerprint(cert),
    )
