"""A long-lived SuperExec for one SuperNode: each ClientApp forked from a warm parent.

Flower 1.42 runs every message a SuperNode receives in a fresh ``flwr-clientapp``
process, started by the SuperNode's SuperExec: Python, Flower, torch and TenSEAL are
loaded again for every message (seconds each on a member's server, three messages a
CKKS round). With the SuperNode in Flower's ``process`` isolation mode (it starts no
SuperExec of its own), this SuperExec, started next to it by ``fedembed node start``
(``deployment.flower_supernode``), imports Flower and the heavy third-party libraries
once, asks the SuperNode's Runtime API for tasks as Flower's SuperExec does
(``AcquireTask``), and runs each task in a process forked from itself: Flower's own
``run_clientapp`` with the task's token, which pulls the message, installs the Flower
App bundle and loads the ClientApp from it exactly as ``flwr-clientapp`` does, except
that a bundle the node has installed before is not extracted again
(``deployment.fab_install``).

What stays as before: one process per message, nothing kept between messages (the
fork's memory dies with it; the parent never runs App code or holds a message); the
node's own privileges on the node's host; the Runtime API on loopback only. What is
tighter: the SuperNode is started with a SuperExec auth secret (a random file readable
by the node's user only, ``--superexec-auth-secret-file``), so only this process can
acquire the node's tasks (in Flower's default mode any local process could).

    python -m deployment.warm_superexec --runtime-api-address 127.0.0.1:PORT
        [--parent-pid PID] < SECRET
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence

__all__ = ["PRELOADED", "main", "preload", "prepare_parent", "serve"]

logger = logging.getLogger(__name__)

# Flower's ClientApp runner and the third-party libraries the ClientApp imports;
# fedembed's own modules are not preloaded (each task loads them from the run's App
# bundle, as flwr-clientapp does).
PRELOADED = (
    "flwr.app",
    "flwr.clientapp",
    "flwr.supernode.runtime.run_clientapp",
    "numpy",
    "torch",
    "torch._dynamo",  # imported by torch.optim's first optimizer (0.25 s a process)
    "opacus",
    "dp_accounting",
    "tenseal",
    "tenseal.sealapi",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "cryptography.x509",
    "filelock",
    "sqlite3",
    "threadpoolctl",
)
_POLL_SECONDS = 0.1


def preload(modules: Sequence[str] = PRELOADED) -> list[str]:
    """Import ``modules`` (those installed); returns the ones imported."""
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        loaded.append(name)
    return loaded


def prepare_parent(modules: Sequence[str] = PRELOADED) -> list[str]:
    """Ready this process to fork ClientApp processes; returns the modules imported.

    Imports ``modules``, shortens Flower's object-pull retries, installs each App bundle
    once (``deployment.fab_install``), and then moves everything loaded so far out of
    the garbage collector's reach (``gc.freeze()``): a child's collections otherwise
    walk the parent's objects and so copy every page they sit on (measured here: 0.25 s
    of CPU and 32,000 page faults for one full collection in a child, 0.05 s and 5,000
    frozen).
    """
    from deployment.fab_install import install_bundles_once
    from federation.flower_pulls import shorten_pull_backoff

    loaded = preload(modules)
    shorten_pull_backoff()  # the forked ClientApp pulls its message as it lands
    install_bundles_once()  # each App bundle extracted once, not once per message
    gc.collect()
    gc.freeze()
    return loaded


def _reap(children: set[int]) -> None:
    for pid in list(children):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            children.discard(pid)


def _run_task(runtime_api_address: str, token: str) -> None:
    """In the forked child: Flower's ClientApp process for one task; never returns.

    Its ``SystemExit`` ends the child as ``flwr-clientapp`` ends (exit handlers run);
    :func:`serve` holds no cleanup of its own that could run in the child.
    """
    from flwr.supernode.runtime.run_clientapp import run_clientapp

    run_clientapp(  # ends with flwr_exit: SystemExit, up to the interpreter's exit
        runtime_api_address=runtime_api_address,
        token=token,
        insecure=True,
        certificates=None,
        parent_pid=os.getppid(),
    )
    raise SystemExit(0)


def serve(runtime_api_address: str, secret: bytes, *, parent_pid: int | None = None) -> None:
    """Acquire the SuperNode's ClientApp tasks and fork a process for each, until stopped."""
    from flwr.proto.runtime_pb2 import AcquireTaskRequest
    from flwr.supercore.app_utils import start_parent_process_monitor
    from flwr.supercore.constant import TaskType
    from flwr.supercore.interceptors import (
        RuntimeVersionHttpInterceptor,
        SuperExecAuthHttpInterceptor,
    )
    from flwr.supercore.retry import make_simple_http_retry_invoker
    from flwr.supercore.runtime import RuntimeHttpClient

    loaded = prepare_parent()
    logger.info("superexec: preloaded %s", ", ".join(loaded))
    if parent_pid is not None:
        start_parent_process_monitor(parent_pid)
    client = RuntimeHttpClient.from_server_address(
        server_address=runtime_api_address,
        insecure=True,
        root_certificates=None,
        interceptors=[
            RuntimeVersionHttpInterceptor(component_name="SuperExec"),
            SuperExecAuthHttpInterceptor(
                master_secret=secret,
                protected_methods=frozenset({"/flwr.proto.Runtime/AcquireTask"}),
            ),
        ],
        retry_invoker=make_simple_http_retry_invoker(),
    )
    children: set[int] = set()
    while True:
        _reap(children)
        answer = client.AcquireTask(
            AcquireTaskRequest(
                supported_task_types=[TaskType.CLIENT_APP.value], agentapp_fab_hashes=[]
            )
        )
        if answer.HasField("task") and answer.token:
            if answer.task.type != TaskType.CLIENT_APP.value:
                logger.error("superexec: task of type %s refused", answer.task.type)
            else:
                pid = os.fork()
                if pid == 0:
                    _run_task(runtime_api_address, answer.token)
                children.add(pid)
                continue  # another task may be waiting
        time.sleep(_POLL_SECONDS)


def main() -> None:
    """Entry point: ``python -m deployment.warm_superexec``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtime-api-address", required=True)
    parser.add_argument("--parent-pid", type=int)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    secret = sys.stdin.buffer.read()  # the SuperExec auth secret, never on the command line
    if not secret:
        sys.exit("error: no SuperExec auth secret on standard input")
    serve(args.runtime_api_address, secret, parent_pid=args.parent_pid)


if __name__ == "__main__":
    main()
