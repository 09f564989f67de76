"""Where datasets live: the data directory and the folder of one dataset.

Datasets are never bundled with fedembed. The user points at a directory that holds
them, with an option (``--data-dir``) or the ``FEDEMBED_DATA_DIR`` environment variable;
the option wins.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from embedding_core.errors import DatasetNotFoundError

__all__ = ["DATA_DIR_ENV", "resolve_data_dir", "resolve_dataset_dir"]

logger = logging.getLogger(__name__)

DATA_DIR_ENV = "FEDEMBED_DATA_DIR"
"""Environment variable naming the data directory when no option is given."""

_BEIR_MARKER = "corpus.jsonl"


def resolve_data_dir(data_dir: str | Path | None) -> Path:
    """Return the data directory to read datasets from.

    Args:
        data_dir: The directory the user passed (``--data-dir``), or ``None`` to fall
            back to the ``FEDEMBED_DATA_DIR`` environment variable.

    Returns:
        The directory, with ``~`` expanded and made absolute.

    Raises:
        DatasetNotFoundError: No directory was given and the environment variable is
            unset or empty, or the directory does not exist or is not a directory.
    """
    source = "--data-dir"
    if data_dir is None or str(data_dir) == "":
        env_value = os.environ.get(DATA_DIR_ENV, "").strip()
        if not env_value:
            raise DatasetNotFoundError(
                "no data directory was given",
                expected=f"a directory passed with --data-dir or named by {DATA_DIR_ENV}",
                fix=(
                    f"pass --data-dir /path/to/data or set {DATA_DIR_ENV}=/path/to/data "
                    "(the folder that holds the dataset folders, e.g. scifact/ and stsb/)"
                ),
            )
        data_dir = env_value
        source = f"${DATA_DIR_ENV}"
    path = Path(data_dir).expanduser().absolute()
    if not path.exists():
        raise DatasetNotFoundError(
            f"the data directory {path} (from {source}) does not exist",
            expected="an existing directory that holds the dataset folders",
            fix=f"create it, or pass --data-dir / set {DATA_DIR_ENV} to the right directory",
        )
    if not path.is_dir():
        raise DatasetNotFoundError(
            f"the data directory {path} (from {source}) is not a directory",
            expected="a directory that holds the dataset folders",
            fix=f"pass --data-dir / set {DATA_DIR_ENV} to the directory, not to a file",
        )
    logger.debug("data directory: %s (from %s)", path, source)
    return path


def resolve_dataset_dir(data_dir: str | Path | None, name: str, *, marker: str) -> Path:
    """Return the folder of the dataset ``name``.

    The folder is ``<data_dir>/<name>``. ``data_dir`` may also point directly at the
    dataset folder, recognised by the ``marker`` file in it.

    Args:
        data_dir: The data directory (see :func:`resolve_data_dir`), or ``None`` to use
            ``FEDEMBED_DATA_DIR``.
        name: The dataset's folder name, e.g. ``"scifact"``.
        marker: A file every copy of the dataset has, relative to its folder, e.g.
            ``"corpus.jsonl"`` for BEIR datasets or ``"sts-test.csv"`` for STS-B.

    Returns:
        The dataset folder.

    Raises:
        DatasetNotFoundError: The data directory cannot be resolved, or neither
            ``<data_dir>/<name>/<marker>`` nor ``<data_dir>/<marker>`` exists.
    """
    root = resolve_data_dir(data_dir)
    candidate = root / name
    if (candidate / marker).is_file():
        return candidate
    if (root / marker).is_file():
        logger.debug("data directory %s is the %s folder itself", root, name)
        return root
    fix = (
        f"pass --data-dir (or set {DATA_DIR_ENV}) to the folder that holds {name}/, "
        f"or to {name}/ itself"
    )
    if marker == _BEIR_MARKER:
        fix += f"; to fetch it, run `fedembed data download {name} --data-dir {root}`"
    raise DatasetNotFoundError(
        f"dataset {name!r} not found: looked for {candidate / marker} and {root / marker}",
        expected=f"a folder {name}/ containing {marker}",
        fix=fix,
    )
