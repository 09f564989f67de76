"""Flower's SuperNode (``flower-supernode``) polling its SuperLink more often.

Flower 1.42's SuperNode asks the SuperLink for a message, and when none is waiting
sleeps 3 s before asking again; once a message is handed to the ClientApp it checks
for the reply every 0.5 s. Each message of a round (train, then the CKKS endorsement
and decryption queries) waits for these polls: about half of a 3-node round's fixed
cost (``benchmarks/bench_round_cost.py``). This entry point runs Flower's own
SuperNode, arguments unchanged, with those waits capped at ``FEDEMBED_SUPERNODE_POLL``
seconds (default 0.5; Flower's behaviour with 3), shorter still right after a message
(:class:`PollClock`). Nothing else changes: same TLS, same node authentication, same
Runtime API; only the SuperNode module's sleeps are shortened.

Given ``--isolation process`` (``deployment.flower_processes.start_supernode`` passes it
unless ``FEDEMBED_WARM_CLIENTAPP=0``), it also starts ``deployment.warm_superexec``
next to the SuperNode, which forks each message's ClientApp process from a parent that
has Flower, torch and TenSEAL loaded already (that module says what stays and what is
tighter).

    python -m deployment.flower_supernode --superlink HOST:PORT ...
"""

from __future__ import annotations

import atexit
import logging
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "DEFAULT_POLL_SECONDS",
    "POLL_ENV",
    "WARM_ENV",
    "PollClock",
    "main",
    "poll_seconds",
    "warm_enabled",
]

logger = logging.getLogger(__name__)

POLL_ENV = "FEDEMBED_SUPERNODE_POLL"
WARM_ENV = "FEDEMBED_WARM_CLIENTAPP"
DEFAULT_POLL_SECONDS = 0.5
_FLOWER_POLL_SECONDS = 3.0


class PollClock:
    """Stands in for ``time`` in Flower's SuperNode loop: shorter, adaptive waits.

    Flower's loop sleeps 3 s when the SuperLink had no message for it, and 0.5 s at a
    time while it waits for the ClientApp's reply (a look at the node's own state). The
    first kind is a request to the SuperLink: after a message was handled the clock looks
    again after ``first_poll`` seconds and doubles the wait up to ``poll`` (the next
    message of a round, such as the CKKS decryption query, usually follows within a
    second). The second kind is local, so it waits ``local_poll`` seconds.
    """

    def __init__(self, poll: float, *, first_poll: float = 0.05, local_poll: float = 0.02) -> None:
        self.poll = poll
        self.first_poll = min(first_poll, poll)
        self.local_poll = min(local_poll, poll)
        self._next = poll

    def sleep(self, seconds: float) -> None:
        """Sleep less than Flower asks: adaptively between polls, briefly for local waits."""
        if seconds >= 1.0:  # between two pulls from the SuperLink
            wait = min(seconds, self._next)
            self._next = min(2 * self._next, self.poll)
        else:  # the node's own state (a reply, an object): a message is being handled
            wait = min(seconds, self.local_poll)
            self._next = self.first_poll
        time.sleep(wait)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def poll_seconds(environ: Mapping[str, str] | None = None) -> float:
    """The poll interval from ``FEDEMBED_SUPERNODE_POLL`` (seconds, 0.05..3).

    Raises:
        ValueError: The variable is not a number in that range.
    """
    raw = (os.environ if environ is None else environ).get(POLL_ENV, "")
    if not raw:
        return DEFAULT_POLL_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.05 <= value <= _FLOWER_POLL_SECONDS:
        raise ValueError(
            f"{POLL_ENV}={raw!r} is not a number of seconds from 0.05 to "
            f"{_FLOWER_POLL_SECONDS:g}; unset it for the default {DEFAULT_POLL_SECONDS:g}"
        )
    return value


def warm_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``FEDEMBED_WARM_CLIENTAPP`` (default on) asks for the warm SuperExec."""
    raw = (os.environ if environ is None else environ).get(WARM_ENV, "1").strip().lower()
    return raw not in {"0", "false", "no", "off"}


def _option(argv: list[str], name: str) -> str | None:
    for n, arg in enumerate(argv):
        if arg == name and n + 1 < len(argv):
            return argv[n + 1]
        if arg.startswith(f"{name}="):
            return arg.split("=", 1)[1]
    return None


def _start_warm_superexec(argv: list[str]) -> list[str]:
    """Start ``deployment.warm_superexec`` for this SuperNode; returns Flower's arguments.

    Only for a SuperNode in Flower's ``process`` isolation mode whose Runtime API is on
    loopback (``--port``, default host) and that names no SuperExec secret of its own.
    It gets a fresh random SuperExec auth secret: a file only the node's user can read
    (in ``TMPDIR``), removed when the SuperNode exits (a SIGKILL leaves it: useless once
    that SuperNode is gone, each start makes a new one); the SuperExec gets the secret on
    its standard input. The SuperExec is this process's child, in its process group
    (stopping the node stops it), and it exits when this process does.
    """
    port = _option(argv, "--port")
    host = _option(argv, "--host") or "127.0.0.1"
    wanted = _option(argv, "--isolation") == "process"
    if not wanted or port is None or host != "127.0.0.1":
        return argv
    if _option(argv, "--superexec-auth-secret-file") is not None:
        return argv
    secret = secrets.token_bytes(32)
    handle, secret_path = tempfile.mkstemp(prefix="fedembed-superexec-", suffix=".secret")
    with os.fdopen(handle, "wb") as out:  # mode 0600
        out.write(secret)
    from flwr.supercore.exit import add_exit_handler

    def remove_secret() -> None:
        Path(secret_path).unlink(missing_ok=True)

    def stop_early(signum: int, _frame: object) -> None:  # until Flower's own handlers
        remove_secret()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    atexit.register(remove_secret)
    add_exit_handler(remove_secret, run_before_force_exit=True)  # Flower's exit on SIGTERM
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop_early)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "deployment.warm_superexec",
            "--runtime-api-address",
            f"127.0.0.1:{port}",
            "--parent-pid",
            str(os.getpid()),
        ],
        stdin=subprocess.PIPE,
    )
    assert child.stdin is not None
    child.stdin.write(secret)
    child.stdin.close()
    return [*argv, "--superexec-auth-secret-file", secret_path]


def main() -> None:
    """Run ``flower-supernode`` with the shorter poll (and the warm SuperExec)."""
    from flwr.supernode import start_client_internal as node_loop
    from flwr.supernode.cli import flower_supernode

    try:
        poll = poll_seconds()
    except ValueError as exc:
        sys.exit(f"error: {exc}")
    sys.argv = [sys.argv[0], *_start_warm_superexec(sys.argv[1:])]
    from federation.flower_pulls import shorten_pull_backoff

    shorten_pull_backoff()  # the message's objects pulled from the SuperLink as they land
    if getattr(node_loop, "time", None) is time:
        node_loop.time = PollClock(poll)  # type: ignore[assignment,attr-defined]
    else:  # another Flower: its own polling, unchanged
        logger.warning("supernode: Flower's SuperNode loop changed; polling left as it is")
    flower_supernode()


if __name__ == "__main__":
    main()
