"""Sealed files: round trips, header layout, one opaque IntegrityError for every kind of
tampering, truncation or swap, and KEK rotation by re-wrapping without re-encrypting."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto.errors import KeyManagementError
from secure_index.errors import IntegrityError
from secure_index.sealing.key_encryption_keys import KeyFileKeks
from secure_index.sealing.sealed_file import (
    FORMAT_VERSION,
    SealedContext,
    open_sealed,
    read_sealed_header,
    rewrap_sealed,
    sealed_kek_id,
    write_sealed,
)

CTX = SealedContext(
    tenant="acme",
    collection="papers",
    kind="index",
    dimension=384,
    metric="cosine",
    element_count=12,
    generation=7,
)
SEGMENT = 1024
DATA = bytes(range(256)) * 19 + b"tail"  # 4868 bytes: 4 full segments and a short one
# The documented header layout for KEK id "kek-1" and a KeyFileKeks blob (12 + 32 + 16).
BLOB = 17
FIELDS = BLOB + 60
SALT, PREFIX, SEGSIZE, LENGTH, CTXLEN, CTXJSON = 81, 113, 120, 124, 132, 136


@pytest.fixture(scope="module")
def module_keks(tmp_path_factory: pytest.TempPathFactory) -> KeyFileKeks:
    return KeyFileKeks.create(tmp_path_factory.mktemp("keys") / "kek.json")


@pytest.fixture
def keks(tmp_path: Path) -> KeyFileKeks:
    return KeyFileKeks.create(tmp_path / "kek.json")


@pytest.fixture
def sealed(tmp_path: Path, keks: KeyFileKeks) -> Path:
    path = tmp_path / "graph-7.sealed"
    write_sealed(path, DATA, context=CTX, keks=keks, segment_size=SEGMENT)
    return path


def _read(path: Path, keks: KeyFileKeks, expected: SealedContext = CTX) -> bytes:
    return bytes(open_sealed(path, expected=expected, keks=keks).read())


def _refused(path: Path, keks: KeyFileKeks, expected: SealedContext = CTX) -> None:
    with pytest.raises(IntegrityError) as excinfo:
        _read(path, keks, expected)
    error = excinfo.value
    assert error.path == path
    assert str(path) in str(error)
    assert "could not be decrypted and authenticated" in str(error)
    assert error.__cause__ is None  # no struct/json/cryptography traceback behind it


@settings(max_examples=40, deadline=None)
@given(
    data=st.binary(max_size=5000),
    segment_size=st.integers(1, 1500),
    form=st.sampled_from(["bytes", "memoryview", "chunks"]),
)
def test_round_trip(module_keks: KeyFileKeks, data: bytes, segment_size: int, form: str) -> None:
    source: object = {
        "bytes": data,
        "memoryview": memoryview(bytearray(data)),
        "chunks": [data[: len(data) // 3], memoryview(data[len(data) // 3 :])],
    }[form]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "f.sealed"
        size = write_sealed(path, source, context=CTX, keks=module_keks, segment_size=segment_size)  # type: ignore[arg-type]
        reader = open_sealed(path, expected=CTX, keks=module_keks)
        into = bytearray(reader.plaintext_length)
        reader.read_into(memoryview(into))
        chunks = list(reader.iter_chunks())
        whole = reader.read()
        reader.close()
        assert size == path.stat().st_size
        assert reader.plaintext_length == len(data)
        assert bytes(into) == bytes(whole) == b"".join(chunks) == data
        assert all(len(c) <= segment_size for c in chunks)


def test_header_layout_and_canonical_context(sealed: Path, keks: KeyFileKeks) -> None:
    raw = sealed.read_bytes()
    header = read_sealed_header(sealed)
    context_json = (
        b'{"collection":"papers","dimension":384,"element_count":12,"format_version":1,'
        b'"generation":7,"kind":"index","metric":"cosine","tenant":"acme"}'
    )
    assert raw[:BLOB] == b"FEDSEAL" + b"\x00\x01" + b"\x05kek-1" + b"\x00\x3c"
    assert int.from_bytes(raw[SEGSIZE:LENGTH], "big") == SEGMENT
    assert int.from_bytes(raw[LENGTH:CTXLEN], "big") == len(DATA)
    assert raw[CTXJSON : CTXJSON + len(context_json)] == context_json
    assert CTX.associated_data() == context_json
    assert header.body_offset == CTXJSON + len(context_json)
    assert len(raw) == header.body_offset + len(DATA) + 5 * 16
    assert (header.kek_id, header.context, header.plaintext_length) == ("kek-1", CTX, len(DATA))
    assert sealed_kek_id(sealed) == "kek-1"
    assert stat_mode(sealed) == 0o600
    assert FORMAT_VERSION == 1


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _flip(path: Path, offset: int) -> None:
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x01
    path.write_bytes(bytes(raw))


def _region_offsets(path: Path) -> dict[str, int]:
    body = read_sealed_header(path).body_offset
    full = SEGMENT + 16
    return {
        "magic": 0,
        "version": 8,
        "kek-id-length": 9,
        "wrapped-key-length": 16,
        "wrapped-key": BLOB + 30,
        "fields-length": FIELDS + 3,
        "salt": SALT + 5,
        "nonce-prefix": PREFIX + 2,
        "segment-size": SEGSIZE + 3,
        "plaintext-length": LENGTH + 7,
        "context-length": CTXLEN + 3,
        "context-json": CTXJSON + 20,
        "first-segment": body + 3,
        "middle-segment": body + 2 * full + 500,
        "middle-tag": body + 3 * full - 1,
        "last-tag": path.stat().st_size - 1,
    }


@pytest.mark.parametrize(
    "region",
    [
        "magic",
        "version",
        "kek-id-length",
        "wrapped-key-length",
        "wrapped-key",
        "fields-length",
        "salt",
        "nonce-prefix",
        "segment-size",
        "plaintext-length",
        "context-length",
        "context-json",
        "first-segment",
        "middle-segment",
        "middle-tag",
        "last-tag",
    ],
)
def test_a_flipped_bit_in_any_region_is_refused(
    sealed: Path, keks: KeyFileKeks, region: str
) -> None:
    _flip(sealed, _region_offsets(sealed)[region])
    _refused(sealed, keks)


def test_an_edited_kek_id_is_unknown_and_named(sealed: Path, keks: KeyFileKeks) -> None:
    _flip(sealed, 10)  # "kek-1" -> "jek-1"
    with pytest.raises(KeyManagementError, match="jek-1 is not known") as excinfo:
        _read(sealed, keks)
    assert str(sealed) in str(excinfo.value)


def test_a_relabelled_kek_id_is_refused(sealed: Path, keks: KeyFileKeks) -> None:
    keks.rotate()
    raw = bytearray(sealed.read_bytes())
    raw[10:15] = b"kek-2"  # a known id, but not the one that wrapped the key
    sealed.write_bytes(bytes(raw))
    _refused(sealed, keks)


def test_a_bumped_format_version_is_refused(sealed: Path, keks: KeyFileKeks) -> None:
    raw = bytearray(sealed.read_bytes())
    raw[7:9] = (FORMAT_VERSION + 1).to_bytes(2, "big")
    sealed.write_bytes(bytes(raw))
    _refused(sealed, keks)


def _cut(keep: Callable[[int, int], int]) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        raw = path.read_bytes()
        body = read_sealed_header(path).body_offset
        path.write_bytes(raw[: keep(body, len(raw))])

    return apply


@pytest.mark.parametrize(
    "keep",
    [
        lambda body, size: 0,
        lambda body, size: 5,
        lambda body, size: body - 1,
        lambda body, size: body,
        lambda body, size: body + 1 * (SEGMENT + 16),
        lambda body, size: body + 4 * (SEGMENT + 16),
        lambda body, size: body + 2 * (SEGMENT + 16) + 100,
        lambda body, size: size - 1,
    ],
    ids=[
        "empty",
        "inside-magic",
        "inside-header",
        "header-only",
        "after-segment-1",
        "after-segment-4",
        "mid-segment-3",
        "last-byte",
    ],
)
def test_truncation_is_refused(
    sealed: Path, keks: KeyFileKeks, keep: Callable[[int, int], int]
) -> None:
    _cut(keep)(sealed)
    _refused(sealed, keks)


def test_truncation_with_an_edited_length_is_refused(sealed: Path, keks: KeyFileKeks) -> None:
    # Drop the last segment and make the header's length agree: the last flag still fails.
    raw = bytearray(sealed.read_bytes())
    body = read_sealed_header(sealed).body_offset
    raw[LENGTH:CTXLEN] = (4 * SEGMENT).to_bytes(8, "big")
    sealed.write_bytes(bytes(raw[: body + 4 * (SEGMENT + 16)]))
    _refused(sealed, keks)


def test_appended_or_swapped_segments_are_refused(
    tmp_path: Path, sealed: Path, keks: KeyFileKeks
) -> None:
    raw = sealed.read_bytes()
    body = read_sealed_header(sealed).body_offset
    full = SEGMENT + 16
    seg = [raw[body + i * full : body + (i + 1) * full] for i in range(5)]
    appended, swapped = tmp_path / "appended.sealed", tmp_path / "swapped.sealed"
    appended.write_bytes(raw + seg[-1])
    swapped.write_bytes(raw[:body] + seg[0] + seg[2] + seg[1] + seg[3] + seg[4])
    _refused(appended, keks)
    _refused(swapped, keks)


@pytest.mark.parametrize(
    "other",
    [
        {"collection": "other-collection"},
        {"tenant": "other-tenant"},
        {"kind": "metadata"},
        {"generation": 6},
        {"dimension": 768},
        {"metric": "l2"},
        {"element_count": 13},
    ],
    ids=lambda o: next(iter(o)),
)
def test_a_file_from_another_context_is_refused(
    tmp_path: Path, sealed: Path, keks: KeyFileKeks, other: dict[str, object]
) -> None:
    # Prepare: a genuine file of another collection / generation / ... under the same KEK.
    from dataclasses import replace

    foreign = tmp_path / "foreign.sealed"
    write_sealed(foreign, DATA, context=replace(CTX, **other), keks=keks, segment_size=SEGMENT)  # type: ignore[arg-type]
    # Execute: swap it in.
    os.replace(foreign, sealed)
    # Assert
    _refused(sealed, keks)


def test_element_count_can_be_left_unchecked(sealed: Path, keks: KeyFileKeks) -> None:
    from dataclasses import replace

    expected = replace(CTX, element_count=0)
    reader = open_sealed(sealed, expected=expected, keks=keks, check_element_count=False)
    assert reader.context.element_count == 12
    assert bytes(reader.read()) == DATA
    _refused(sealed, keks, expected)


def test_another_kek_with_the_same_id_is_refused(tmp_path: Path, sealed: Path) -> None:
    stranger = KeyFileKeks.create(tmp_path / "other-kek.json")
    assert stranger.primary_id == "kek-1"
    _refused(sealed, stranger)


def test_a_missing_file_is_refused(tmp_path: Path, keks: KeyFileKeks) -> None:
    _refused(tmp_path / "absent.sealed", keks)


def test_read_into_zeroes_the_buffer_when_a_segment_fails(sealed: Path, keks: KeyFileKeks) -> None:
    _flip(sealed, sealed.stat().st_size - 1)
    reader = open_sealed(sealed, expected=CTX, keks=keks)
    out = bytearray(b"\xff" * len(DATA))
    with pytest.raises(IntegrityError):
        reader.read_into(memoryview(out))
    with pytest.raises(IntegrityError):
        list(reader.iter_chunks())
    with pytest.raises(ValueError, match="bytes"):
        reader.read_into(memoryview(bytearray(3)))
    assert out == bytes(len(DATA))


def test_rotation_rewrap_and_retirement(tmp_path: Path, keks: KeyFileKeks) -> None:
    # Prepare: two files under kek-1, then a rotation.
    rewrapped, left = tmp_path / "a.sealed", tmp_path / "b.sealed"
    for path in (rewrapped, left):
        write_sealed(path, DATA, context=CTX, keks=keks, segment_size=SEGMENT)
    before = rewrapped.read_bytes()
    old_header = read_sealed_header(rewrapped)
    keks.rotate()
    readable_after_rotate = _read(rewrapped, keks) == DATA and _read(left, keks) == DATA
    # Execute
    changed = rewrap_sealed(rewrapped, keks=keks)
    again = rewrap_sealed(rewrapped, keks=keks)
    after = rewrapped.read_bytes()
    new_header = read_sealed_header(rewrapped)
    keks.retire("kek-1")
    # Assert
    assert readable_after_rotate
    assert (changed, again) == (True, False)
    assert sealed_kek_id(rewrapped) == "kek-2"
    assert after[new_header.body_offset :] == before[old_header.body_offset :]  # not re-encrypted
    assert after[BLOB : BLOB + 60] != before[BLOB : BLOB + 60]  # a new wrap
    assert _read(rewrapped, keks) == DATA
    assert _read(rewrapped, KeyFileKeks.load(tmp_path / "kek.json")) == DATA
    with pytest.raises(KeyManagementError, match="kek-1 was retired") as excinfo:
        _read(left, keks)
    assert str(left) in str(excinfo.value)
    assert "rotate" in excinfo.value.fix


def test_rewrap_refuses_a_damaged_wrapped_key_and_leaves_the_file(
    sealed: Path, keks: KeyFileKeks
) -> None:
    keks.rotate()
    _flip(sealed, BLOB + 5)
    damaged = sealed.read_bytes()
    with pytest.raises(IntegrityError):
        rewrap_sealed(sealed, keks=keks)
    assert sealed.read_bytes() == damaged
    assert sorted(p.name for p in sealed.parent.iterdir()) == ["graph-7.sealed", "kek.json"]


def test_sealed_kek_id_of_garbage_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sealed"
    path.write_bytes(b"FEDSEAL\x00\x01\xff")
    with pytest.raises(IntegrityError):
        sealed_kek_id(path)


@pytest.mark.parametrize(
    "fields",
    [{"dimension": -1}, {"generation": True}, {"tenant": 3}],
    ids=["negative", "bool", "not-str"],
)
def test_context_fields_are_validated(fields: dict[str, object]) -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="SealedContext"):
        replace(CTX, **fields)  # type: ignore[arg-type]
