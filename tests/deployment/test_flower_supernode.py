"""fedembed's SuperNode entry point: the shorter poll and the warm SuperExec next to it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from deployment.flower_processes import (
    FLOWER_DEFAULTS_ENV,
    ManagedProcess,
    free_port,
    start_supernode,
)
from deployment.flower_supernode import (
    DEFAULT_POLL_SECONDS,
    POLL_ENV,
    WARM_ENV,
    PollClock,
    poll_seconds,
    warm_enabled,
)
from federation.node_privacy import NodePrivacy
from kits.loader import load_node_kit
from kits.provisioning import provision

NODE = "node-a"


def test_the_poll_interval_comes_from_the_environment() -> None:
    assert poll_seconds({}) == DEFAULT_POLL_SECONDS
    assert poll_seconds({POLL_ENV: "0.2"}) == 0.2
    assert poll_seconds({POLL_ENV: FLOWER_DEFAULTS_ENV[POLL_ENV]}) == 3.0
    for bad in ("0", "nan", "fast", "10"):
        with pytest.raises(ValueError, match=POLL_ENV):
            poll_seconds({POLL_ENV: bad})


def test_the_poll_clock_caps_every_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    waits: list[float] = []
    monkeypatch.setattr(time, "sleep", waits.append)
    clock = PollClock(0.4, first_poll=0.05, local_poll=0.02)

    # Execute: idle polls; a message handled (local waits for its reply); idle again.
    clock.sleep(3.0)  # Flower's wait between two pulls from the SuperLink
    clock.sleep(3.0)
    clock.sleep(0.5)  # Flower's wait for the ClientApp's reply
    clock.sleep(0.5)
    for _ in range(5):
        clock.sleep(3.0)
    clock.sleep(0.01)

    # Assert: capped idle polls; local waits short; after a message the polls start at
    # first_poll and double back to the cap; no wait is longer than asked.
    assert waits == [0.4, 0.4, 0.02, 0.02, 0.05, 0.1, 0.2, 0.4, 0.4, 0.01]
    assert clock.monotonic is time.monotonic  # the rest of `time` passes through


def test_the_warm_superexec_is_on_unless_turned_off() -> None:
    assert warm_enabled({})
    assert not warm_enabled({WARM_ENV: "0"})
    assert not warm_enabled(FLOWER_DEFAULTS_ENV)


def _group(pgid: int) -> dict[int, str]:
    """Processes of process group ``pgid``: pid -> command line."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
    return found


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A provisioned consortium of one node."""
    root = tmp_path_factory.mktemp("warm-supernode")
    provision(root / "kits", node_ids=[NODE])
    return root / "kits"


def test_a_supernode_starts_and_stops_with_its_warm_superexec(kits: Path, tmp_path: Path) -> None:
    # Prepare: no SuperLink answers (the SuperNode keeps trying); a private TMPDIR.
    private_tmp = tmp_path / "node-tmp"
    private_tmp.mkdir()
    node: ManagedProcess = start_supernode(
        node_kit=load_node_kit(kits / "nodes" / NODE),
        data_dir=tmp_path / "data",
        superlink_address=f"127.0.0.1:{free_port()}",
        node_name=NODE,
        log_dir=tmp_path / "logs",
        node_privacy=NodePrivacy(max_epsilon=1.0),
        env={"TMPDIR": str(private_tmp)},
    )
    try:
        # Execute: wait for its SuperExec (pytest-timeout bounds the wait).
        while not any("deployment.warm_superexec" in c for c in _group(node.process.pid).values()):
            assert node.alive(), node.log()
            time.sleep(0.2)
        group = _group(node.process.pid)
        secrets = list(private_tmp.glob("fedembed-superexec-*"))
        modes = [f.stat().st_mode & 0o777 for f in secrets]
    finally:
        node.stop()

    # Assert: Flower's process isolation with a private SuperExec secret; after stop,
    # neither the SuperExec nor the secret is left.
    assert "--isolation process" in group[node.process.pid]
    assert modes == [0o600]
    assert not node.alive()
    assert not any(f.exists() for f in secrets)
    while _group(node.process.pid):  # the group's last members exit after the SIGTERM
        time.sleep(0.2)
