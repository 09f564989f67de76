"""The state anchor: it survives a torn write, refuses forgery and another tenant, holds
one store at a time, follows KEK rotation and group-commits concurrent updates."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from crypto.errors import KeyManagementError
from secure_index.errors import StateAnchorError
from secure_index.sealing import KeyFileKeks
from secure_index.storage.state_anchor import AnchoredState, StateAnchor, default_anchor_path


@pytest.fixture
def keks(tmp_path: Path) -> KeyFileKeks:
    return KeyFileKeks.create(tmp_path / "kek.json")


def _anchor(path: Path, keks: KeyFileKeks, tenant: str = "t") -> StateAnchor:
    return StateAnchor.open(path, keks=keks, tenant=tenant)


def test_records_persist_and_never_go_backwards(tmp_path: Path, keks: KeyFileKeks) -> None:
    path = tmp_path / "a.state-anchor"
    anchor = _anchor(path, keks)
    anchor.record("docs", AnchoredState("hnsw", 3, 40))
    anchor.advance("docs", 45)
    anchor.record("docs", AnchoredState("hnsw", 2, 10))  # older: ignored
    anchor.close()
    reopened = _anchor(path, keks)
    assert reopened.existed
    assert reopened.get("docs") == AnchoredState("hnsw", 3, 45)
    reopened.close()


def test_a_torn_write_falls_back_to_the_previous_claim(tmp_path: Path, keks: KeyFileKeks) -> None:
    # Prepare: two updates land in the two slots
    path = tmp_path / "a.state-anchor"
    anchor = _anchor(path, keks)
    anchor.advance("docs", 5)
    anchor.advance("docs", 6)
    anchor.close()
    raw = bytearray(path.read_bytes())
    half = len(raw) // 2
    newest = 0 if raw[:half].rstrip(b"\0") and b'"seq":6' in raw[:half] else 1
    # Execute: the newest slot is torn
    raw[newest * half + 40] ^= 0xFF
    path.write_bytes(bytes(raw))
    # Assert: the older, smaller claim wins (never more than was durable)
    reopened = _anchor(path, keks)
    assert reopened.get("docs") == AnchoredState("hnsw", 0, 5)
    reopened.close()


def test_forged_foreign_or_shared_anchors_are_refused(tmp_path: Path, keks: KeyFileKeks) -> None:
    path = tmp_path / "a.state-anchor"
    anchor = _anchor(path, keks)
    anchor.advance("docs", 5)
    with pytest.raises(StateAnchorError, match="in use"):
        _anchor(path, keks)
    anchor.close()
    with pytest.raises(StateAnchorError, match="another tenant"):
        _anchor(path, keks, tenant="other")
    with pytest.raises(StateAnchorError, match="does not authenticate"):
        _anchor(path, KeyFileKeks.create(tmp_path / "other.json"))
    anchor = _anchor(path, keks)
    anchor.advance("docs", 6)  # the two slots now claim seq 5 and seq 6
    anchor.close()
    raw = path.read_bytes().replace(b'"seq":5', b'"seq":1').replace(b'"seq":6', b'"seq":1')
    path.write_bytes(raw)  # claim less, without the key
    with pytest.raises(StateAnchorError, match="does not authenticate"):
        _anchor(path, keks)


def test_the_anchor_follows_kek_rotation(tmp_path: Path, keks: KeyFileKeks) -> None:
    path = tmp_path / "a.state-anchor"
    anchor = _anchor(path, keks)
    anchor.advance("docs", 5)
    old = keks.primary_id
    keks.rotate()
    assert anchor.rewrap()
    anchor.close()
    keks.retire(old)
    reopened = _anchor(path, keks)
    assert reopened.get("docs") == AnchoredState("hnsw", 0, 5)
    reopened.close()
    stale = _anchor(tmp_path / "b.state-anchor", keks)
    stale.close()
    keks.rotate()
    keks.retire(keks.versions()[0].id)
    with pytest.raises(KeyManagementError, match="state anchor"):  # only a retired KEK opens it
        _anchor(tmp_path / "b.state-anchor", keks)


def test_concurrent_updates_share_writes_and_large_anchors_grow(
    tmp_path: Path, keks: KeyFileKeks
) -> None:
    path = tmp_path / "a.state-anchor"
    anchor = _anchor(path, keks)

    def writer(t: int) -> None:
        for seq in range(1, 51):
            anchor.advance(f"c{t}", seq)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(80)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    anchor.close()
    reopened = _anchor(path, keks)
    assert [reopened.get(f"c{t}") for t in range(80)] == [AnchoredState("hnsw", 0, 50)] * 80
    assert path.stat().st_size > 2 * 4096  # 80 collections outgrew the first slot size
    reopened.close()


def test_the_default_path_is_beside_the_key_file_one_per_store(tmp_path: Path) -> None:
    a = default_anchor_path(tmp_path / "kek.json", tmp_path / "one")
    b = default_anchor_path(tmp_path / "kek.json", tmp_path / "two")
    assert a.parent == tmp_path
    assert a.name.startswith("kek.json.")
    assert a != b
