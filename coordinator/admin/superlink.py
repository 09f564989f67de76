"""The connection to the SuperLink's Control API that every ``flwr`` command names.

:func:`ensure_connection` makes sure ``<home>/flwr-home/config.toml`` holds a
``[superlink.fedembed]`` block (address: the admin setting ``superlink_control``; TLS
trust: the coordinator kit's ``ca.crt``) and returns its name, to pass to ``flwr``
commands run with ``FLWR_HOME=<home>/flwr-home``
(:func:`deployment.flower_processes.flwr_command`). :func:`ensure_flwr_connection` does
the same for any ``FLWR_HOME`` (``fedembed coordinator register --kits``). An existing
block of that name is left as the operator wrote it.

:func:`control_api_listening` is the cheap check before a ``flwr`` command: ``flwr``
takes a second or two to start and as long again to give up on a SuperLink that is not
running, so a roster or a console page asks first whether anything listens there.
"""

from __future__ import annotations

import logging
import socket
import threading
import tomllib
from pathlib import Path

from coordinator.admin.errors import AdminUnavailableError
from coordinator.admin.settings import DEFAULT_CONNECTION, AdminSettings
from deployment.flower_processes import write_flwr_connection
from kits.layout import CA_CERT

__all__ = ["control_api_listening", "ensure_connection", "ensure_flwr_connection"]

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()


def ensure_flwr_connection(
    flwr_home: Path, *, address: str, ca_cert: Path, name: str = DEFAULT_CONNECTION
) -> str:
    """Write ``[superlink.NAME]`` into ``flwr_home/config.toml`` unless it is there.

    Returns:
        ``name``, the connection to pass to ``flwr`` commands.

    Raises:
        AdminUnavailableError: ``ca_cert`` does not exist, or ``config.toml`` is not TOML.
    """
    flwr_home, ca_cert = flwr_home.expanduser().absolute(), ca_cert.expanduser().absolute()
    config = flwr_home / "config.toml"  # flwr accepts only absolute certificate paths
    with _LOCK:
        if config.is_file():
            try:
                content = tomllib.loads(config.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
                raise AdminUnavailableError(
                    f"{config} cannot be read ({err})",
                    expected="Flower's config.toml with [superlink.NAME] blocks",
                    fix=f"correct or remove {config}; fedembed writes the [superlink.{name}] "
                    "block itself",
                ) from None
            superlinks = content.get("superlink")
            if isinstance(superlinks, dict) and name in superlinks:
                return name
        if not ca_cert.is_file():
            raise AdminUnavailableError(
                f"the consortium CA certificate {ca_cert} does not exist",
                expected="the coordinator kit's ca.crt (`fedembed coordinator provision` "
                "writes it into <kits>/coordinator/)",
                fix="provision the consortium first, or point to its kits folder",
            )
        write_flwr_connection(flwr_home, name, address=address, ca_cert=ca_cert)
    logger.info("superlink: connection %s written to FLWR_HOME", name)
    return name


def ensure_connection(settings: AdminSettings) -> str:
    """The ``flwr`` connection name for the consortium's SuperLink, written if missing."""
    home = settings.consortium
    return ensure_flwr_connection(
        home.flwr_home,
        address=settings.superlink_control,
        ca_cert=home.coordinator_kit / CA_CERT,
    )


def control_api_listening(address: str, *, timeout: float = 1.0) -> bool:
    """Whether anything accepts a TCP connection at ``address`` (``host:port``).

    An address this cannot read counts as listening: ``flwr`` then judges it.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return True
    try:
        with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout):
            return True
    except (OSError, OverflowError, ValueError):
        return False
