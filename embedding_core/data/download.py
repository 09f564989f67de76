"""Downloading BEIR datasets for users with network access.

The zip is streamed to a temporary file inside the data directory, checked against its
published MD5, extracted safely (no member may land outside the target folder) into a
temporary folder, validated with :func:`~embedding_core.data.beir.load_beir` and only
then renamed to ``<data_dir>/<name>/``. A failed download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath

from embedding_core.data.beir import load_beir
from embedding_core.errors import DataFormatError, FedembedError

__all__ = ["BEIR_MD5", "BEIR_URL_TEMPLATE", "DownloadError", "download_beir"]

logger = logging.getLogger(__name__)

BEIR_URL_TEMPLATE = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
"""Where the BEIR authors publish each dataset's zip."""

BEIR_MD5: dict[str, str] = {
    "msmarco": "444067daf65d982533ea17ebd59501e4",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
    "cqadupstack": "4e41456d7df8ee7760a7f866133bda78",
    "quora": "18fb154900ba42a600f84b839c173167",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
}
"""MD5 of each official BEIR zip, as published in the BEIR README (beir-cellar/beir)."""

_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CHUNK = 1 << 20


class DownloadError(FedembedError):
    """A dataset could not be downloaded, or the download was corrupt."""


def _manual_fix(url: str, target: Path) -> str:
    return (
        f"check your network and the dataset name, or download {url} yourself and "
        f"unzip it so that {target / 'corpus.jsonl'} exists"
    )


def _fetch(url: str, destination: Path, timeout: float, target: Path) -> str:
    """Stream ``url`` into ``destination`` and return the MD5 hex digest of the bytes."""
    digest = hashlib.md5(usedforsecurity=False)
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "fedembed"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0)
            received = 0
            next_report = 10
            with destination.open("wb") as out:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    if total and received * 100 >= next_report * total:
                        logger.info(
                            "downloading %s: %d%% of %d bytes", url, received * 100 // total, total
                        )
                        next_report = received * 100 // total // 10 * 10 + 10
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"could not download {url}: HTTP {exc.code} {exc.reason}",
            fix=_manual_fix(url, target),
        ) from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DownloadError(
            f"could not download {url}: {reason}", fix=_manual_fix(url, target)
        ) from exc
    if total and received != total:
        raise DownloadError(
            f"could not download {url}: got {received} of {total} bytes",
            fix=_manual_fix(url, target),
        )
    logger.info("downloaded %s (%d bytes)", url, received)
    return digest.hexdigest()


def _is_unsafe_member(member: str) -> bool:
    """Tell whether a zip member name could be written outside the extraction folder."""
    if member.startswith(("/", "\\")) or PureWindowsPath(member).drive:
        return True
    parts = PurePosixPath(member.replace("\\", "/")).parts
    return ".." in parts


def _extract(archive: Path, into: Path, name: str) -> None:
    """Extract ``archive`` into ``into``, refusing members that escape it."""
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                if _is_unsafe_member(member):
                    raise DataFormatError(
                        Path(f"{name}.zip"),
                        0,
                        f"archive member {member!r} would be written outside the dataset folder",
                        expected="relative member paths without '..'",
                        fix="do not use this archive; get the dataset from the official source",
                    )
            bundle.extractall(into)
    except zipfile.BadZipFile as exc:
        raise DataFormatError(
            Path(f"{name}.zip"),
            0,
            f"the download is not a valid zip file ({exc})",
            expected="a zip archive",
            fix="retry with --force, or check the URL",
        ) from exc


def _dataset_folder(extracted: Path, name: str) -> Path:
    """Return the folder of the extracted archive that holds ``corpus.jsonl``."""
    for folder in (extracted / name, extracted):
        if (folder / "corpus.jsonl").is_file():
            return folder
    raise DataFormatError(
        Path(f"{name}.zip"),
        0,
        f"the archive holds neither {name}/corpus.jsonl nor corpus.jsonl",
        expected=f"a BEIR zip with a top folder {name}/",
        fix="check the URL and the dataset name",
    )


def _install(folder: Path, target: Path, backup: Path) -> None:
    """Move ``folder`` to ``target``, replacing an existing ``target`` only on success."""
    replaced = target.exists()
    if replaced:
        target.rename(backup)
    try:
        folder.rename(target)
    except OSError:
        if replaced:
            backup.rename(target)
        raise


def download_beir(
    name: str,
    data_dir: str | Path,
    *,
    url: str | None = None,
    md5: str | None = None,
    timeout: float = 60.0,
    force: bool = False,
) -> Path:
    """Download a BEIR dataset into ``<data_dir>/<name>/``.

    Args:
        name: The BEIR dataset name, e.g. ``"scifact"``.
        data_dir: The data directory; created if missing.
        url: Where to download the zip from; by default the official BEIR URL.
        md5: The zip's expected MD5. By default the published checksum is used for the
            official URL; a custom ``url`` is only checked when ``md5`` is given.
        timeout: Seconds to wait for the server on each network operation.
        force: Download again even if the folder already exists (it is replaced only
            once the new copy has been validated).

    Returns:
        The dataset folder.

    Raises:
        DownloadError: The download failed or its checksum does not match.
        DataFormatError: The archive is not a zip, has unsafe member paths, or the
            dataset in it is malformed.
        DatasetNotFoundError: The archive does not hold a BEIR dataset with a test split.
        FedembedError: ``name`` is not a plain folder name.
    """
    if not _NAME_PATTERN.fullmatch(name):
        raise FedembedError(
            f"invalid dataset name {name!r}",
            expected="a plain name such as scifact or nfcorpus",
            fix="pass the BEIR dataset name",
        )
    root = Path(data_dir).expanduser().absolute()
    target = root / name
    if target.exists() and not force:
        logger.info("%s already exists; not downloading (use force to download again)", target)
        return target
    source = url or BEIR_URL_TEMPLATE.format(name=name)
    expected_md5 = md5 if md5 is not None else (BEIR_MD5.get(name) if url is None else None)
    root.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=f".{name}-download-", dir=root))
    try:
        archive = workdir / f"{name}.zip"
        logger.info("downloading %s from %s", name, source)
        actual_md5 = _fetch(source, archive, timeout, target)
        if expected_md5 is not None and actual_md5 != expected_md5.lower():
            raise DownloadError(
                f"checksum mismatch for {source}: MD5 is {actual_md5}, expected {expected_md5}",
                fix="retry; if it persists the file on the server changed or is corrupt, "
                "so download it from another mirror",
            )
        if expected_md5 is None:
            logger.warning(
                "no known MD5 for %s; skipping the checksum (MD5 %s)", source, actual_md5
            )
        extracted = workdir / "extracted"
        _extract(archive, extracted, name)
        archive.unlink()
        folder = _dataset_folder(extracted, name)
        load_beir(folder, split="test", name=name)
        _install(folder, target, workdir / "previous")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    logger.info("%s is ready in %s", name, target)
    return target
