"""The on-premise commands as an operator types them: exit statuses, signals, errors in flags.

The SuperNode and SuperLink cases run the real ``fedembed`` command as a subprocess
against a real SuperLink; the error messages run ``fedembed.cli.main`` in this process
(the same path as the console script, without paying for an interpreter start each).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployment.flower_processes import ManagedProcess, free_port, start_superlink
from fedembed.cli import main
from kits.loader import load_coordinator_kit
from kits.provisioning import provision

REPO_ROOT = Path(__file__).resolve().parents[2]
MEMBER = "member-a"


def fedembed(*args: str) -> list[str]:
    """The command line of ``fedembed ARGS`` in this interpreter."""
    return [sys.executable, "-m", "fedembed", "-q", *args]


def run_main(
    args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    """Run ``fedembed ARGS`` in-process; its exit status and everything it printed."""
    monkeypatch.setattr(sys, "argv", ["fedembed", "-q", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    captured = capsys.readouterr()
    code = exited.value.code
    return (code if isinstance(code, int) else 1), captured.out + captured.err


def write_member_data(folder: Path) -> Path:
    """A tiny valid member data folder."""
    folder.mkdir(parents=True, exist_ok=True)
    docs = [{"id": "d1", "text": "aspirin after infarction"}, {"id": "d2", "text": "statins"}]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "interactions.jsonl").write_text(
        json.dumps({"query_id": "q1", "query": "aspirin", "doc_id": "d1"}) + "\n"
    )
    return folder


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A provisioned consortium of one member (its node key made by provisioning)."""
    out = tmp_path_factory.mktemp("onprem") / "kits"
    provision(out, node_ids=[MEMBER])
    return out


@pytest.fixture
def superlink(kits: Path, tmp_path: Path) -> Iterator[ManagedProcess]:
    """A real SuperLink with SuperNode authentication and no node registered."""
    link = start_superlink(
        coordinator_kit=load_coordinator_kit(kits / "coordinator"), state_dir=tmp_path / "link"
    )
    yield link
    link.stop()


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_node_start_reports_a_failed_supernode_and_its_status(
    kits: Path, superlink: ManagedProcess, tmp_path: Path
) -> None:
    data = write_member_data(tmp_path / "member")

    result = subprocess.run(
        fedembed(
            "node",
            "start",
            "--data-dir",
            str(data),
            "--kit",
            str(kits / "nodes" / MEMBER),
            "--superlink",
            str(superlink.extra["address"]),
            "--max-epsilon",
            "1",
        ),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert f"error: SuperNode {MEMBER} exited with status {result.returncode}" in result.stderr
    assert "Failed to activate SuperNode" in result.stderr  # the SuperNode's own error line
    assert "register" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_sigterm_to_coordinator_superlink_stops_the_flower_superlink(
    kits: Path, tmp_path: Path
) -> None:
    port = free_port()
    command = subprocess.Popen(
        fedembed(
            "coordinator",
            "superlink",
            "--kit",
            str(kits / "coordinator"),
            "--state-dir",
            str(tmp_path / "link"),
            "--port",
            str(port),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
    )
    flower: list[int] = []
    try:
        assert command.stdout is not None
        assert "SuperLink on" in command.stdout.readline()  # printed once it listens
        flower = _children(command.pid)
        assert flower
        assert all(_running(pid) for pid in flower)

        command.send_signal(signal.SIGTERM)
        status = command.wait(timeout=60)

        deadline = time.monotonic() + 10  # the group's grandchildren are reaped by init
        while any(_running(pid) for pid in flower) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status == 0
        assert not any(_running(pid) for pid in flower)
    finally:
        if command.poll() is None:
            command.kill()
        for pid in flower:  # left running by a command that ignored the signal
            if _running(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize("value", ["0", "-1", "inf", "nan", "1e308", "101"])
def test_max_epsilon_must_be_a_usable_budget(
    value: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_member_data(tmp_path / "member")

    code, output = run_main(
        [
            "node",
            "start",
            "--data-dir",
            str(data),
            "--kit",
            str(tmp_path / "kit"),
            "--superlink",
            "127.0.0.1:1",
            f"--max-epsilon={value}",
        ],
        monkeypatch,
        capsys,
    )

    assert code == 2
    assert "--max-epsilon" in output
    assert "node config" not in output


@pytest.mark.parametrize(
    ("args", "flag", "python_words"),
    [
        (["--dcpe-beta", "0"], "--dcpe-beta", "dcpe_beta"),
        (["--superlink-host", "bad host!"], "--superlink-host", "superlink_host"),
    ],
)
def test_provision_errors_name_its_flags(
    args: list[str],
    flag: str,
    python_words: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, output = run_main(
        ["coordinator", "provision", "--out", str(tmp_path / "kits"), "--node", "a", *args],
        monkeypatch,
        capsys,
    )

    assert code == 2
    assert flag in output
    assert python_words not in output


def test_provision_into_a_used_folder_names_force_and_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    used = tmp_path / "kits"
    used.mkdir()
    (used / "notes.txt").write_text("mine")

    code, output = run_main(
        ["coordinator", "provision", "--out", str(used), "--node", "a"], monkeypatch, capsys
    )

    assert code == 2
    assert "--force" in output
    assert "--out" in output
    assert "force=True" not in output
    assert "out_dir" not in output


def test_provision_into_an_unwritable_place_is_one_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_main(
        ["coordinator", "provision", "--out", "/proc/forbidden", "--node", "a"],
        monkeypatch,
        capsys,
    )

    assert code == 2
    assert "error: --out /proc/forbidden" in output
    assert "Traceback" not in output


def test_superlink_port_out_of_range_is_refused(
    kits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_main(
        [
            "coordinator",
            "superlink",
            "--kit",
            str(kits / "coordinator"),
            "--state-dir",
            str(tmp_path / "link"),
            "--port",
            "70000",
        ],
        monkeypatch,
        capsys,
    )

    assert code == 2
    assert "--port" in output
    assert "70000" in output
    assert "Traceback" not in output


def test_node_check_hints_name_the_data_format_not_absent_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_member_data(tmp_path / "member")
    (data / "documents.jsonl").write_text('{"doc": "d1", "body": "aspirin"}\n')

    code, output = run_main(["node", "check", "--data-dir", str(data)], monkeypatch, capsys)

    assert code == 2
    assert "documents.jsonl:1" in output
    assert '"id"' in output
    assert '"text"' in output
    assert "--id-column" not in output
    assert "--text-column" not in output


@pytest.mark.parametrize("field", ["query", "query_id", "doc_id"])
def test_node_check_refuses_a_null_field_instead_of_reading_none(
    field: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = write_member_data(tmp_path / "member")
    record = {"query_id": "q1", "query": "aspirin", "doc_id": "d1", field: None}
    (data / "interactions.jsonl").write_text(json.dumps(record) + "\n")

    code, output = run_main(["node", "check", "--data-dir", str(data)], monkeypatch, capsys)

    assert code == 2
    assert f'interactions.jsonl:1: "{field}" is null' in output


@pytest.mark.parametrize("command", ["check", "ledger"])
def test_node_commands_refuse_a_missing_data_folder(
    command: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    missing = tmp_path / "nonexistent"

    code, output = run_main(["node", command, "--data-dir", str(missing)], monkeypatch, capsys)

    assert code == 2
    assert "--data-dir" in output
    assert f"{missing} does not exist" in output
    assert "spent_epsilon" not in output


def test_data_validate_has_the_format_flag_its_hint_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "documents.txt"
    docs.write_text('{"id": 1, "text": "aspirin"}\n')

    hinted, hint = run_main(["data", "validate", str(docs)], monkeypatch, capsys)
    code, output = run_main(
        ["data", "validate", str(docs), "--format", "jsonl"], monkeypatch, capsys
    )

    assert hinted == 2
    assert "--format" in hint
    assert code == 0, output
    assert "ok: 1 documents" in output


def test_data_validate_says_a_file_is_not_a_dataset_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = tmp_path / "corpus.jsonl"
    docs.write_text('{"_id": "1", "text": "aspirin"}\n')

    code, output = run_main(["data", "validate", str(docs), "--kind", "beir"], monkeypatch, capsys)

    assert code == 2
    assert "is a file, not a folder" in output
    assert "does not exist" not in output


def test_a_mistyped_command_is_suggested_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, output = run_main(["node", "strat"], monkeypatch, capsys)

    assert code == 2
    assert output.count("Did you mean 'start'?") == 1


def test_node_check_help_documents_both_member_files() -> None:
    result = subprocess.run(
        fedembed("node", "check", "--help"),
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "120"},
        check=False,
    )

    assert result.returncode == 0
    for text in ("documents.jsonl", "interactions.jsonl", '"query_id"', '"doc_id"', "person_id"):
        assert text in result.stdout
    assert '{"id": "d1", "text":' in result.stdout  # an example line


def test_node_ledger_shows_each_run_and_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from client_node.local_round import LEDGER_FILE
    from client_node.node_data import STATE_DIR
    from privacy import PrivacyLedger

    data = write_member_data(tmp_path / "member")
    ledger = PrivacyLedger.open(
        data / STATE_DIR / LEDGER_FILE, node_id=MEMBER, max_epsilon=8.0, delta=1e-5
    )
    for run, server_round in (("trial", 1), ("trial", 2), ("release", 1)):
        ledger.charge(
            noise_multiplier=2.0, sample_rate=1.0, steps=1, run_id=run, round=server_round
        )
    total = ledger.spent_epsilon()

    code, table = run_main(["node", "ledger", "--data-dir", str(data)], monkeypatch, capsys)
    json_code, printed = run_main(
        ["node", "ledger", "--data-dir", str(data), "--json"], monkeypatch, capsys
    )

    assert code == 0
    assert json_code == 0
    assert "run trial: epsilon" in table
    assert "run release: epsilon" in table
    assert "round   2" in table
    assert "fellow-member" in table
    document = json.loads(printed)
    runs = {run["run"]: run for run in document["per_run"]}
    assert [r["round"] for r in runs["trial"]["rounds"]] == [1, 2]
    charged = sum(r["epsilon_charged"] for run in runs.values() for r in run["rounds"])
    assert charged == pytest.approx(total)
    assert document["refusals"] == []


def test_compose_exposes_to_members_only_the_fleet_and_query_gateways() -> None:
    import yaml

    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    published = {
        name: [str(port) for port in service.get("ports", [])] for name, service in services.items()
    }

    assert "admin" in services
    assert services["admin"]["command"][:3] == ["coordinator", "admin", "serve"]
    assert published["admin"] == ["127.0.0.1:8300:8300"]
    assert published["superlink"] == ["127.0.0.1:9093:9093"]
    on_every_address = {
        name: ports
        for name, ports in published.items()
        if any(not port.startswith("127.0.0.1:") for port in ports)
    }
    assert on_every_address == {"gateway": ["8100:8100"], "fleet-gateway": ["9092:9092"]}
    for name in ("admin", "superlink"):
        networks = services[name]["networks"]
        assert "public" not in networks
