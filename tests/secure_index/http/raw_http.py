"""HTTP/1.1 over a bare socket: headers exactly as written (no client normalises them) and
a body that may be only partly sent, so a test sees what the server does before it has
the whole body."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

# How long the server may take to answer: generous, so a loaded machine only slows the
# test; a server that waits for body bytes that never come still fails it.
PATIENCE_S = 120.0


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def problem(self) -> str:
        return str(json.loads(self.body)["error"]["problem"])


def raw_request(
    url: str,
    method: str,
    path: str,
    headers: list[tuple[str, str]],
    *,
    declared_length: int = 0,
    body: bytes = b"",
) -> RawResponse:
    """Send the request line, ``headers`` verbatim, and ``body`` (possibly shorter than
    ``declared_length``); read the answer until the server closes the connection."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    lines += [f"Content-Length: {declared_length}", "Content-Type: application/json"]
    lines += [f"{name}: {value}" for name, value in headers]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    received = bytearray()
    with socket.create_connection((host, port), timeout=PATIENCE_S) as sock:
        sock.sendall(head + body)
        while chunk := sock.recv(1 << 16):
            received += chunk
    status_line, _, rest = bytes(received).partition(b"\r\n")
    header_block, _, payload = rest.partition(b"\r\n\r\n")
    fields = {}
    for line in header_block.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return RawResponse(int(status_line.split()[1]), fields, payload)
