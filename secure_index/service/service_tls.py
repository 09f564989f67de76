"""TLS of the index services: the listener's certificate and the gateway's store link.

A service started with ``--tls-cert`` / ``--tls-key`` serves HTTPS only (uvicorn,
TLS 1.2 or newer); its private key must be a secret file (owner-only, owned by the
user running the service: :mod:`crypto.secret_files`) and must match the certificate,
both checked before the service binds its port. The gateway reaches a store with
``https://`` and trusts the CA in ``FEDEMBED_INDEX_STORE_CA`` (else the system trust
store); plain ``http://`` to a store is accepted only on loopback, where no other host
sees the DCPE vectors and the store token cross.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from pathlib import Path
from urllib.parse import urlsplit

from crypto.secret_files import require_secret_file
from secure_index.errors import SecureIndexError

__all__ = ["check_server_tls", "is_loopback_host", "store_link_problem"]

logger = logging.getLogger(__name__)

_LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a URL's host) is this machine's loopback interface."""
    name = host.strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def store_link_problem(store_url: str, store_ca: Path | None) -> str | None:
    """What is wrong with the gateway's link to its store, or None when it is sound.

    ``https://`` is sound (with ``store_ca`` or the system trust store); ``http://`` only
    to a loopback host and without ``store_ca`` (a CA that would never be used hides a
    forgotten scheme).
    """
    parts = urlsplit(store_url)
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if scheme not in ("http", "https") or not host:
        return (
            f"FEDEMBED_INDEX_STORE_URL {store_url!r} is not an http(s) URL with a host: "
            "expected e.g. https://index-store:8200"
        )
    if scheme == "https":
        return None
    if store_ca is not None:
        return (
            f"FEDEMBED_INDEX_STORE_CA is set but FEDEMBED_INDEX_STORE_URL {store_url!r} is "
            "plain http://: use https:// for a store started with --tls-cert"
        )
    if not is_loopback_host(host):
        return (
            f"FEDEMBED_INDEX_STORE_URL {store_url!r} is plain http:// to another host: the "
            "store token and the DCPE vectors would cross the network in clear; serve the "
            "store with --tls-cert/--tls-key and use https:// with FEDEMBED_INDEX_STORE_CA "
            "(plain http:// is accepted only for 127.0.0.1, ::1 or localhost)"
        )
    return None


def check_server_tls(cert: Path, key: Path) -> None:
    """Refuse a TLS certificate and key that uvicorn could not serve, before binding.

    Raises:
        crypto.secret_files.SecretFileError: The key file is readable by others or owned
            by another user.
        SecureIndexError: A missing or unreadable file, or a key that is not the
            certificate's.
    """
    try:
        require_secret_file(key, what="TLS private key")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certfile=str(cert), keyfile=str(key))
    except (OSError, ssl.SSLError) as exc:
        raise SecureIndexError(
            f"the TLS certificate {cert} and key {key} cannot be served "
            f"({type(exc).__name__}: {exc})",
            expected="a PEM certificate (with its chain) and the PEM private key that matches it",
            fix="pass --tls-cert server.crt --tls-key server.key from `fedembed index tls-cert`",
        ) from None
    logger.info("tls: serving with certificate %s", cert)
