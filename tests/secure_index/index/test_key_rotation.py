"""KEK rotation over a store with at-rest, DCPE and CKKS collections, through the CLI.

Rotation re-wraps every sealed file (snapshots, log files, CKKS evaluation contexts and
blocks), refuses before changing anything while a service holds the store, and a crash
in the middle is finished by ``keys rewrap`` or another ``rotate``; ``retire`` refuses
while any file still names the version and succeeds once none does. The audit log's keyed
head anchor and the store's state anchor are among those files: after rotate and retire
the audit log still verifies, and a forged audit anchor is never re-MAC'd.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray

from crypto.ckks_search import CkksDocumentEncryptor
from crypto.ckks_search_key import CkksSearchKey
from crypto.dcpe import DcpeKey, ScaleAndPerturb
from crypto.errors import KeyManagementError
from secure_index.index.hnsw_collection import CollectionSpec, Metric, Protection
from secure_index.index.index_store import IndexStore
from secure_index.index.key_rotation import kek_usage, rewrap_store
from secure_index.sealing import KeyFileKeks
from secure_index.service.audit_anchor import AnchorKey, anchor_path, encode_anchor
from secure_index.service.audit_log import AuditLog
from secure_index.service.settings import STORE_DIR, audit_path
from secure_index.storage.state_anchor import resolve_anchor_path

TENANT = "consortium"
DIM = 12
SIGKILLED = -9
# Runs a rotation and SIGKILLs itself right after the first CKKS file was re-wrapped:
# the at-rest and DCPE collections are done, the CKKS blocks are not.
CRASHING_ROTATION = """
import os, signal, sys
from pathlib import Path
import secure_index.index.ckks_collections as ckks_collections
from secure_index.index.key_rotation import rotate_store
from secure_index.sealing import KeyFileKeks
from secure_index.storage.state_anchor import resolve_anchor_path

real = ckks_collections.rewrap_sealed

def crash_after_one(path, *, keks):
    changed = real(path, keks=keks)
    os.kill(os.getpid(), signal.SIGKILL)
    return changed

ckks_collections.rewrap_sealed = crash_after_one
key_file, store = Path(sys.argv[1]), Path(sys.argv[2])
anchor = resolve_anchor_path(None, key_file=key_file, store_root=store)
rotate_store(store, keks=KeyFileKeks.load(key_file), tenant=sys.argv[3], state_anchor=anchor)
"""


def fedembed(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fedembed", *args],
        capture_output=True, text=True, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip


def _json(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout)
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def ckks_key() -> CkksSearchKey:
    return CkksSearchKey.generate(dimension=DIM)


def _unit(n: int, seed: int) -> NDArray[np.float32]:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    unit: NDArray[np.float32] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


class Index:
    """A data dir with an at-rest, a DCPE and a CKKS collection, and how to check them."""

    def __init__(self, root: Path, ckks_key: CkksSearchKey) -> None:
        self.data_dir = root / "idx"
        self.store = self.data_dir / STORE_DIR
        self.key_file = root / "kek.json"
        self.ckks_key = ckks_key
        self.plain = _unit(50, 1)
        self.dcpe = ScaleAndPerturb(DcpeKey.generate(tenant=TENANT, beta=0.5, key_id="t.v1"))
        self.dcpe_docs = self.dcpe.encrypt(_unit(30, 2)).vectors
        self.blocks = [_unit(20, 3), _unit(15, 4)]
        keks = KeyFileKeks.create(self.key_file)
        # the anchor beside the key file, where the service and the CLI keep it
        self.anchor = resolve_anchor_path(None, key_file=self.key_file, store_root=self.store)
        store = self.open(keks)
        store.create_collection(CollectionSpec("plain", DIM))
        store.upsert("plain", [f"p{i}" for i in range(40)], self.plain[:40], owner="node-a")
        store.snapshot("plain")
        store.upsert("plain", [f"p{i}" for i in range(40, 50)], self.plain[40:], owner="node-a")
        spec = CollectionSpec("dcpe", DIM, metric=Metric.L2, protection=Protection.DCPE)
        store.create_collection(spec)
        store.upsert("dcpe", [f"d{i}" for i in range(30)], self.dcpe_docs, owner="node-b")
        ckks = store.ckks_collections()
        ckks.create("ckks", dimension=DIM, evaluation_context=ckks_key.evaluation_context())
        encryptor = CkksDocumentEncryptor(ckks_key.public_context(), dimension=DIM)
        for number, block in enumerate(self.blocks):
            ids = [f"c{number}-{i}" for i in range(len(block))]
            ckks.put_block("ckks", "node-c", number, ids, encryptor.encrypt_block(block))
        store.close(snapshot=False)  # the last upserts stay in the logs

    def open(self, keks: KeyFileKeks) -> IndexStore:
        return IndexStore(
            self.store, keks=keks, tenant=TENANT, background=False, state_anchor=self.anchor
        )

    def keys(self, *args: str) -> subprocess.CompletedProcess[str]:
        return fedembed(
            "index", "keys", *args, "--key-file", str(self.key_file), "--data-dir",
            str(self.data_dir),
        )  # fmt: skip

    def assert_readable(self) -> None:
        """Every collection and the anchor open with the key file as it is now; answers hold."""
        with self.open(KeyFileKeks.load(self.key_file)) as store:
            plain = store.knn_query("plain", self.plain[[4, 45]], k=1)
            dcpe = store.knn_query("dcpe", self.dcpe_docs[[7]], k=1)
            assert [hits[0].doc_id for hits in plain] == ["p4", "p45"]
            assert dcpe[0][0].doc_id == "d7"
            assert store.stats("plain").documents == 50
            query = self.ckks_key.encrypt_query(self.blocks[1][3])
            answers = store.ckks_collections().score("ckks", query)
        scores = self.ckks_key.decrypt_scores(
            [a.answer for a in answers], [len(a.ids) for a in answers]
        )
        ids = [i for a in answers for i in a.ids]
        assert ids[int(np.argmax(scores))] == "c1-3"


def _kinds(paths: list[Path]) -> set[str]:
    return {"log" if p.suffix == ".log" else p.parent.name for p in paths}


def test_rotation_rewraps_every_sealed_file_and_retire_then_succeeds(
    tmp_path: Path, ckks_key: CkksSearchKey
) -> None:
    # Prepare: every kind of sealed file exists under kek-1
    index = Index(tmp_path, ckks_key)
    before = kek_usage(index.store)
    assert set(before) == {"kek-1"}
    assert {"log", "plain", "dcpe", "ckks", "blocks"} <= _kinds(before["kek-1"])
    # Execute
    rotated = _json(index.keys("rotate"))
    retired = _json(fedembed("index", "keys", "retire", "kek-1", "--key-file",
                             str(index.key_file), "--data-dir", str(index.data_dir)))  # fmt: skip
    # Assert: nothing names kek-1, and the index answers with kek-1 gone from the key file
    assert rotated["primary"] == "kek-2"
    assert rotated["older_files"] == {}
    assert isinstance(rotated["rewrapped_files"], int)
    assert rotated["rewrapped_files"] >= 3  # the evaluation context and two blocks at least
    assert set(kek_usage(index.store)) == {"kek-2"}
    assert retired == {"retired": "kek-1", "primary": "kek-2"}
    assert [v.id for v in KeyFileKeks.load(index.key_file).versions()] == ["kek-2"]
    index.assert_readable()


def test_rotation_refuses_before_changing_anything_while_the_store_is_in_use(
    tmp_path: Path, ckks_key: CkksSearchKey
) -> None:
    # Prepare: a running store holds the folder
    index = Index(tmp_path, ckks_key)
    key_file_before = index.key_file.read_bytes()
    running = index.open(KeyFileKeks.load(index.key_file))
    try:
        # Execute
        result = index.keys("rotate")
    finally:
        running.close()
    # Assert
    assert result.returncode == 2
    assert "in use by a running index service" in result.stderr
    assert "nothing was changed" in result.stderr
    assert index.key_file.read_bytes() == key_file_before
    assert set(kek_usage(index.store)) == {"kek-1"}


@pytest.mark.parametrize("finish", ["rewrap", "rotate"])
def test_a_crash_in_the_middle_of_a_rotation_is_finished_by_running_again(
    tmp_path: Path, ckks_key: CkksSearchKey, finish: str
) -> None:
    # Prepare: a rotation killed after the first CKKS file was re-wrapped
    index = Index(tmp_path, ckks_key)
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_ROTATION, str(index.key_file), str(index.store), TENANT],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert crashed.returncode == SIGKILLED, crashed.stderr
    half = kek_usage(index.store)
    assert set(half) == {"kek-1", "kek-2"}
    assert _kinds(half["kek-1"]) <= {"ckks", "blocks"}  # the CKKS files not re-wrapped yet
    index.assert_readable()  # the key file holds both versions: nothing is lost
    # Execute: retire is refused, then the operator runs the advised command
    refused = index.keys("retire", "kek-1")
    finished = _json(index.keys(finish))
    retire_all = [
        _json(index.keys("retire", kek_id))
        for kek_id in ("kek-1", "kek-2")
        if kek_id != finished["primary"]
    ]
    # Assert
    assert refused.returncode == 2
    assert f"{len(half['kek-1'])} sealed file(s)" in refused.stderr
    assert "keys rewrap" in refused.stderr
    assert finished["older_files"] == {}
    assert finished["primary"] == ("kek-2" if finish == "rewrap" else "kek-3")
    assert set(kek_usage(index.store)) == {finished["primary"]}
    assert [r["retired"] for r in retire_all] == (
        ["kek-1"] if finish == "rewrap" else ["kek-1", "kek-2"]
    )
    index.assert_readable()


def test_rewrap_is_idempotent_and_retire_of_a_mistyped_data_dir_is_refused(
    tmp_path: Path, ckks_key: CkksSearchKey
) -> None:
    # Prepare
    index = Index(tmp_path, ckks_key)
    # Execute
    again = _json(index.keys("rewrap"))
    mistyped = fedembed("index", "keys", "retire", "kek-1", "--key-file", str(index.key_file),
                        "--data-dir", str(tmp_path / "nowhere"))  # fmt: skip
    # Assert
    assert again == {"primary": "kek-1", "rewrapped_files": 0, "older_files": {}}
    assert mistyped.returncode == 2
    assert "holds no index store" in mistyped.stderr
    with pytest.raises(KeyManagementError, match="holds no index store"):
        kek_usage(tmp_path / "nowhere")


def _audited(index: Index, records: int = 3) -> Path:
    """The data dir's audit log with ``records`` records, its head anchor under kek-1."""
    log = audit_path(index.data_dir)
    with AuditLog(log, keks=KeyFileKeks.load(index.key_file)) as audit:
        for i in range(records):
            audit.append(
                actor=f"key-{i}", role="partner", action="query", collection="plain",
                decision="allow", detail={"k": 5},
            )  # fmt: skip
    return log


def _verify_audit(index: Index) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEDEMBED_INDEX_")}
    result = subprocess.run(
        [sys.executable, "-m", "fedembed", "index", "verify-audit", "--data-dir",
         str(index.data_dir), "--key-file", str(index.key_file)],
        capture_output=True, text=True, check=False, env=env | {"HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    verdict = json.loads(result.stdout)
    assert isinstance(verdict, dict)
    return verdict


def test_rotate_then_retire_leaves_the_audit_log_verifiable_with_the_new_key_file(
    tmp_path: Path, ckks_key: CkksSearchKey
) -> None:
    # Prepare: an index whose data dir holds an audit log anchored under kek-1
    index = Index(tmp_path, ckks_key)
    log = _audited(index)
    # Execute: rotate and retire at once, with no service start in between
    rotated = _json(index.keys("rotate"))
    retired = _json(index.keys("retire", "kek-1"))
    verdict = _verify_audit(index)
    # Assert: the anchor follows the rotation; kek-1 is gone and the log still verifies
    assert rotated["older_files"] == {}
    assert retired == {"retired": "kek-1", "primary": "kek-2"}
    assert json.loads(anchor_path(log).read_bytes())["kek_id"] == "kek-2"
    assert (verdict["ok"], verdict["entries"], verdict["anchor_authenticated"]) == (True, 3, True)
    assert set(kek_usage(index.store, state_anchor=index.anchor, audit_log=log)) == {"kek-2"}


def test_retire_before_the_anchors_are_rewrapped_is_refused_naming_them(
    tmp_path: Path, ckks_key: CkksSearchKey
) -> None:
    # Prepare: kek-2 added and the store's own files re-wrapped, but neither anchor (a
    # re-wrap run without the data dir's audit log and without the state anchor)
    index = Index(tmp_path, ckks_key)
    log = _audited(index)
    keks = KeyFileKeks.load(index.key_file)
    keks.rotate()
    partial = rewrap_store(index.store, keks=keks, tenant=TENANT)
    assert partial.older_files == {}  # the store folder alone looks done
    # Execute: retire is refused; the advised command is run; retire again
    refused = index.keys("retire", "kek-1")
    finished = _json(index.keys("rewrap"))
    retired = _json(index.keys("retire", "kek-1"))
    # Assert
    assert refused.returncode == 2
    assert "sealed file(s)" not in refused.stderr
    assert f"the state anchor {index.anchor}" in refused.stderr
    assert f"the audit log's head anchor {anchor_path(log)}" in refused.stderr
    assert "still use kek-1" in refused.stderr
    assert "keys rewrap" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (finished["rewrapped_files"], finished["older_files"]) == (1, {})
    assert retired == {"retired": "kek-1", "primary": "kek-2"}
    assert _verify_audit(index)["ok"] is True
    index.assert_readable()


def test_a_forged_audit_anchor_is_not_laundered_by_a_rotation(
    tmp_path: Path, ckks_key: CkksSearchKey
) -> None:
    # Prepare: someone without the KEK cut the log's last record and wrote an anchor for
    # the shorter chain under a key of their own
    index = Index(tmp_path, ckks_key)
    log = _audited(index)
    lines = log.read_text().splitlines(keepends=True)[:2]
    log.write_text("".join(lines))
    last = json.loads(lines[-1])
    forger = AnchorKey.create(KeyFileKeks.create(tmp_path / "forger.json"))
    anchor_path(log).write_bytes(encode_anchor(forger, 2, last["hash"], last))
    forged = anchor_path(log).read_bytes()
    # Execute
    rotated = index.keys("rotate")
    # Assert: the rotation stops at the anchor, which keeps the forger's MAC
    assert rotated.returncode == 2
    assert f"head anchor {anchor_path(log)} cannot be re-wrapped" in rotated.stderr
    assert "keys rewrap" in rotated.stderr
    assert anchor_path(log).read_bytes() == forged
    assert _verify_audit(index)["ok"] is False
