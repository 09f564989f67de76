from __future__ import annotations

import functools
import hashlib
import socket
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from embedding_core.data import BEIR_MD5, BEIR_URL_TEMPLATE, DownloadError, download_beir, load_beir
from embedding_core.errors import DataFormatError, FedembedError

SCIFACT_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv", "qrels/train.tsv")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server_root(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real HTTP server on 127.0.0.1 serving a folder; yields (folder, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()  # shutdown() has stopped serve_forever: the thread is ending


def build_scifact_zip(shared_data_dir: Path, destination: Path) -> Path:
    with zipfile.ZipFile(destination, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
        for relative in SCIFACT_FILES:
            bundle.write(shared_data_dir / "scifact" / relative, f"scifact/{relative}")
    return destination


def leftovers(data_dir: Path) -> list[str]:
    return sorted(p.name for p in data_dir.iterdir()) if data_dir.exists() else []


def test_official_defaults() -> None:
    # Assert
    assert BEIR_URL_TEMPLATE.format(name="scifact").endswith("/BEIR/datasets/scifact.zip")
    assert BEIR_MD5["scifact"] == "5f7d1de60b170fc8027bb7898e2efca1"


def test_download_extract_and_validate(
    shared_data_dir: Path, server_root: tuple[Path, str], tmp_path: Path
) -> None:
    # Prepare
    root, base_url = server_root
    archive = build_scifact_zip(shared_data_dir, root / "scifact.zip")
    md5 = hashlib.md5(archive.read_bytes()).hexdigest()
    data_dir = tmp_path / "data"

    # Execute
    folder = download_beir("scifact", data_dir, url=f"{base_url}/scifact.zip", md5=md5)

    # Assert
    assert folder == data_dir / "scifact"
    dataset = load_beir(folder, split="test")
    assert dataset.num_docs == 5183
    assert len(dataset.queries) == 300
    assert leftovers(data_dir) == ["scifact"]


def test_existing_folder_is_kept_without_download(
    shared_data_dir: Path, server_root: tuple[Path, str], tmp_path: Path
) -> None:
    # Prepare
    _, base_url = server_root
    existing = tmp_path / "data" / "scifact"
    existing.mkdir(parents=True)
    (existing / "marker").write_text("keep", encoding="utf-8")

    # Execute (the URL would 404, so a download attempt would fail)
    folder = download_beir("scifact", tmp_path / "data", url=f"{base_url}/missing.zip")

    # Assert
    assert folder == existing
    assert (existing / "marker").read_text(encoding="utf-8") == "keep"


def test_force_replaces_existing_folder(
    shared_data_dir: Path, server_root: tuple[Path, str], tmp_path: Path
) -> None:
    # Prepare
    root, base_url = server_root
    build_scifact_zip(shared_data_dir, root / "scifact.zip")
    existing = tmp_path / "data" / "scifact"
    existing.mkdir(parents=True)
    (existing / "stale").write_text("old", encoding="utf-8")

    # Execute
    folder = download_beir("scifact", tmp_path / "data", url=f"{base_url}/scifact.zip", force=True)

    # Assert
    assert not (folder / "stale").exists()
    assert (folder / "corpus.jsonl").is_file()
    assert leftovers(tmp_path / "data") == ["scifact"]


def test_md5_mismatch_leaves_nothing(
    shared_data_dir: Path, server_root: tuple[Path, str], tmp_path: Path
) -> None:
    # Prepare
    root, base_url = server_root
    build_scifact_zip(shared_data_dir, root / "scifact.zip")
    data_dir = tmp_path / "data"

    # Execute
    with pytest.raises(DownloadError) as caught:
        download_beir("scifact", data_dir, url=f"{base_url}/scifact.zip", md5="0" * 32)

    # Assert
    assert "checksum mismatch" in str(caught.value)
    assert "0" * 32 in str(caught.value)
    assert leftovers(data_dir) == []


def test_zip_slip_member_rejected(server_root: tuple[Path, str], tmp_path: Path) -> None:
    # Prepare
    root, base_url = server_root
    with zipfile.ZipFile(root / "evil.zip", "w") as bundle:
        bundle.writestr("evil/corpus.jsonl", '{"_id": "1", "text": "x"}\n')
        bundle.writestr("../../escaped.txt", "gotcha")
    data_dir = tmp_path / "data"

    # Execute
    with pytest.raises(DataFormatError) as caught:
        download_beir("evil", data_dir, url=f"{base_url}/evil.zip")

    # Assert
    assert "../../escaped.txt" in str(caught.value)
    assert "outside" in str(caught.value)
    assert leftovers(data_dir) == []
    assert not (tmp_path / "escaped.txt").exists()


def test_absolute_member_rejected(server_root: tuple[Path, str], tmp_path: Path) -> None:
    # Prepare
    root, base_url = server_root
    with zipfile.ZipFile(root / "abs.zip", "w") as bundle:
        bundle.writestr("/tmp/abs-member.txt", "gotcha")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        download_beir("abs", tmp_path / "data", url=f"{base_url}/abs.zip")

    # Assert
    assert "outside" in str(caught.value)
    assert leftovers(tmp_path / "data") == []


def test_not_a_zip(server_root: tuple[Path, str], tmp_path: Path) -> None:
    # Prepare
    root, base_url = server_root
    (root / "broken.zip").write_bytes(b"<html>not a zip</html>")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        download_beir("broken", tmp_path / "data", url=f"{base_url}/broken.zip")

    # Assert
    assert "not a valid zip" in str(caught.value)
    assert leftovers(tmp_path / "data") == []


def test_invalid_dataset_in_zip_is_not_installed(
    server_root: tuple[Path, str], tmp_path: Path
) -> None:
    # Prepare
    root, base_url = server_root
    with zipfile.ZipFile(root / "bad.zip", "w") as bundle:
        bundle.writestr("bad/corpus.jsonl", "{broken\n")
        bundle.writestr("bad/queries.jsonl", '{"_id": "q", "text": "t"}\n')
        bundle.writestr("bad/qrels/test.tsv", "query-id\tcorpus-id\tscore\nq\t1\t1\n")

    # Execute
    with pytest.raises(DataFormatError) as caught:
        download_beir("bad", tmp_path / "data", url=f"{base_url}/bad.zip")

    # Assert
    assert "corpus.jsonl:1:" in str(caught.value)
    assert leftovers(tmp_path / "data") == []


def test_http_404_is_clear(server_root: tuple[Path, str], tmp_path: Path) -> None:
    # Prepare
    _, base_url = server_root
    url = f"{base_url}/nope.zip"

    # Execute
    with pytest.raises(DownloadError) as caught:
        download_beir("nope", tmp_path / "data", url=url)

    # Assert
    message = str(caught.value)
    assert f"could not download {url}: HTTP 404" in message
    assert "Fix:" in message
    assert str(tmp_path / "data" / "nope") in message
    assert leftovers(tmp_path / "data") == []


def test_connection_refused_is_clear(tmp_path: Path) -> None:
    # Prepare: a port nobody listens on
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/scifact.zip"

    # Execute
    with pytest.raises(DownloadError) as caught:
        download_beir("scifact", tmp_path / "data", url=url)

    # Assert
    assert f"could not download {url}" in str(caught.value)
    assert leftovers(tmp_path / "data") == []


def test_invalid_name_rejected(tmp_path: Path) -> None:
    # Execute
    with pytest.raises(FedembedError) as caught:
        download_beir("../escape", tmp_path)

    # Assert
    assert "invalid dataset name" in str(caught.value)
