"""Dataset loading: BEIR retrieval sets, STS-B pairs, users' documents, downloads.

Datasets are read from a data directory the user names (``--data-dir`` or
``FEDEMBED_DATA_DIR``); nothing is bundled. Malformed files raise
:class:`~embedding_core.errors.DataFormatError` naming the file, the line and the fix.
"""

from __future__ import annotations

from embedding_core.data.beir import BeirDataset, load_beir
from embedding_core.data.documents import SUPPORTED_FORMATS, Document, load_documents
from embedding_core.data.download import (
    BEIR_MD5,
    BEIR_URL_TEMPLATE,
    DownloadError,
    download_beir,
)
from embedding_core.data.paths import DATA_DIR_ENV, resolve_data_dir, resolve_dataset_dir
from embedding_core.data.stsb import StsPair, load_stsb

__all__ = [
    "BEIR_MD5",
    "BEIR_URL_TEMPLATE",
    "DATA_DIR_ENV",
    "SUPPORTED_FORMATS",
    "BeirDataset",
    "Document",
    "DownloadError",
    "StsPair",
    "download_beir",
    "load_beir",
    "load_documents",
    "load_stsb",
    "resolve_data_dir",
    "resolve_dataset_dir",
]
