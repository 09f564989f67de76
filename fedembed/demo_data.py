"""The datasets the main job reads: checked before any work, fetched when the network allows.

``fedembed demo`` reads STS-B and SciFact, and its audit reads BANKING77, SEAT and STS-B's
other splits. :func:`ensure_demo_data` checks every file before the job starts. Missing
datasets are downloaded from their published sources (SciFact as BEIR publishes it, MD5
checked; the others from the pinned commits of their source repositories, SHA-256
checked) when the network answers within a few seconds; otherwise the job stops at once
with one line naming the folder, the files expected there and the README to read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from embedding_core.errors import FedembedError

__all__ = [
    "DEMO_DATASETS",
    "DemoDataset",
    "MissingDataError",
    "ensure_demo_data",
    "missing_files",
]

logger = logging.getLogger(__name__)

_GITHUB = "https://raw.githubusercontent.com"
_STSB = (
    f"{_GITHUB}/zhangzhenhu/Semantic-Texual-Similarity-Toolkits/"
    "c55a72f51bd15a8bd75114247c06984b432050f9/data/stsbenchmark"
)
_BANKING = (
    f"{_GITHUB}/PolyAI-LDN/task-specific-datasets/"
    "57ec275d8078af65b7731c2a98be812d844a6d6b/banking_data"
)
_SEAT = f"{_GITHUB}/W4ngatang/sent-bias/e3559fb669ca4832743b42fee715994c15c7f1af/tests"
QUICK_SEAT_TESTS = ("weat1", "weat2", "weat7")
"""The SEAT tests of the quick audit (``audit.AuditConfig.quick``)."""
README = "../shared/data/README.md"
_SHA256 = {
    "sts-train.csv": "0f71910b59aa1ad973c5897f0791f3b0965a92b8f82b1a95f3eea9f4162fda82",
    "sts-dev.csv": "5d7e944d8b02734b07bfdb5df67db3420c64bed153fcaa1ba47ad03480cf4234",
    "sts-test.csv": "affe45928a66ee5a708531233c95b7dacbbdc57f974f002a3d32ea0180cf816a",
    "train.csv": "b06e26ac675513959a63135f11b94ea7786ed02da65db93a5650d8838cbc664b",
    "test.csv": "d12d6e3bc4c3103966ae786dc435913c0c563dfa328f5a3646d0e62cfeeb474d",
}
"""SHA-256 of the published files, as copied in ../shared/data (their SHA256SUMS)."""


@dataclass(frozen=True)
class DemoDataset:
    """One dataset folder: the files the job reads and where each is published."""

    name: str
    files: tuple[str, ...]
    sources: dict[str, tuple[str, str]]  # file -> (url, sha256); empty: BEIR download


def _sources(base: str, *names: str) -> dict[str, tuple[str, str]]:
    return {name: (f"{base}/{name}", _SHA256[name]) for name in names}


DEMO_DATASETS = (
    DemoDataset(
        "stsb",
        ("stsb-test.jsonl", "stsb-train.jsonl", "stsb-dev.jsonl"),
        _sources(_STSB, "sts-train.csv", "sts-dev.csv", "sts-test.csv"),
    ),
    DemoDataset(
        "scifact", ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv", "qrels/test.tsv"), {}
    ),
    DemoDataset(
        "banking77", ("train.csv", "test.csv"), _sources(_BANKING, "train.csv", "test.csv")
    ),
)
"""What the main job reads (SEAT is checked apart: which tests depends on the audit)."""
AUDIT_ONLY = ("banking77",)
"""Datasets only the audit reads."""


class MissingDataError(FedembedError):
    """Datasets the main job needs are missing and could not be downloaded."""


def _seat_files(tests: Sequence[str]) -> tuple[str, ...]:
    return tuple(f"tests/{name}.jsonl" for name in tests)


def missing_files(data_dir: Path, seat_tests: Sequence[str] | None) -> dict[str, list[str]]:
    """``{dataset: [missing files]}`` for every dataset the job reads (empty: all there).

    ``seat_tests`` names the audit's SEAT tests; ``None`` = every test (at least one file
    under ``seat/tests/``), ``()`` = no audit (nor BANKING77, which only the audit reads).
    """
    missing: dict[str, list[str]] = {}
    for dataset in DEMO_DATASETS:
        if dataset.name in AUDIT_ONLY and seat_tests == ():
            continue
        files = [f for f in dataset.files if not (data_dir / dataset.name / f).is_file()]
        if files:
            missing[dataset.name] = files
    if seat_tests == ():
        return missing
    if seat_tests is None:
        if not any((data_dir / "seat" / "tests").glob("*.jsonl")):
            missing["seat"] = ["tests/*.jsonl"]
    else:
        files = [f for f in _seat_files(seat_tests) if not (data_dir / "seat" / f).is_file()]
        if files:
            missing["seat"] = files
    return missing


def _describe(data_dir: Path, missing: dict[str, list[str]]) -> str:
    return "; ".join(
        f"{data_dir / name}/ needs {', '.join(files)}" for name, files in missing.items()
    )


def _network_reason(timeout: float) -> str | None:
    """``None`` when the dataset hosts answer within ``timeout`` seconds, else why not."""
    try:
        with socket.create_connection(("raw.githubusercontent.com", 443), timeout=timeout):
            return None
    except OSError as exc:
        return str(exc) or type(exc).__name__


def _fetch(url: str, sha256: str, target: Path, timeout: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "fedembed"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    digest = hashlib.sha256(body).hexdigest()
    if digest != sha256:
        raise MissingDataError(
            f"the download of {url} has SHA-256 {digest}, expected {sha256}",
            fix=f"download it yourself into {target} (see {README})",
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    partial.write_bytes(body)
    partial.replace(target)


def _stsb_jsonl(folder: Path) -> None:
    """Write ``stsb-{split}.jsonl`` from the release's ``sts-{split}.csv`` files."""
    from embedding_core.data.stsb import load_stsb

    for split in ("train", "dev", "test"):
        target = folder / f"stsb-{split}.jsonl"
        if target.is_file():
            continue
        pairs = load_stsb(folder / f"sts-{split}.csv")
        lines = [
            json.dumps(
                {"score": p.score, "sentence1": p.sentence1, "sentence2": p.sentence2},
                ensure_ascii=False,
            )
            for p in pairs
        ]
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _download(data_dir: Path, missing: dict[str, list[str]], timeout: float) -> None:
    from embedding_core.data.download import download_beir

    for dataset in DEMO_DATASETS:
        if dataset.name not in missing:
            continue
        folder = data_dir / dataset.name
        if not dataset.sources:
            partial = Path(tempfile.mkdtemp(prefix=f".{dataset.name}-", dir=data_dir))
            try:
                download_beir(dataset.name, partial, timeout=timeout)
                for name in dataset.files:
                    (folder / name).parent.mkdir(parents=True, exist_ok=True)
                    if not (folder / name).is_file():
                        shutil.copyfile(partial / dataset.name / name, folder / name)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
            continue
        for name, (url, sha256) in dataset.sources.items():
            if not (folder / name).is_file():
                _fetch(url, sha256, folder / name, timeout)
        if dataset.name == "stsb":
            _stsb_jsonl(folder)
    for name in missing.get("seat", []):
        stem = Path(name).stem
        tests = QUICK_SEAT_TESTS if stem == "*" else (stem,)
        for test in tests:
            target = data_dir / "seat" / "tests" / f"{test}.jsonl"
            if not target.is_file():
                request = urllib.request.Request(f"{_SEAT}/{test}.jsonl")
                with urllib.request.urlopen(request, timeout=timeout) as response:
                    body = response.read()
                json.loads(body)  # one JSON object per file; a broken download fails here
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(body)


def ensure_demo_data(
    data_dir: Path,
    *,
    seat_tests: Sequence[str] | None,
    download: bool = True,
    connect_timeout: float = 3.0,
    timeout: float = 60.0,
) -> list[str]:
    """Check every dataset the job reads; download the missing ones, or fail in one line.

    Args:
        data_dir: The data folder (``--data-dir``); created when datasets are downloaded.
        seat_tests: The audit's SEAT tests (see :func:`missing_files`).
        download: Try to download what is missing (``False``: only check).
        connect_timeout: Seconds to wait for the dataset host before giving up.
        timeout: Seconds per network operation of a download.

    Returns:
        The datasets downloaded (empty when everything was there).

    Raises:
        MissingDataError: Something is missing and could not be downloaded; its message
            is one line naming the folder, the files and the README.
    """
    missing = missing_files(data_dir, seat_tests)
    if not missing:
        return []
    reason = _network_reason(connect_timeout) if download else "downloads are off"
    if reason is None:
        logger.info("downloading the missing datasets into %s: %s", data_dir, ", ".join(missing))
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            _download(data_dir, missing, timeout)
        except (OSError, urllib.error.URLError, ValueError, FedembedError) as exc:
            reason = f"the download failed: {exc}"
        still = missing_files(data_dir, seat_tests)
        if not still and reason is None:
            return list(missing)
        missing = still or missing
    raise MissingDataError(
        f"missing datasets ({reason}): {_describe(data_dir, missing)}",
        fix=f"copy them there (see {README}) or pass --data-dir to the folder that holds them",
    )
