"""A node installs each Flower App bundle once, not once per message.

Flower 1.42's ClientApp runner (``run_clientapp``) calls ``flwr.cli.install.
install_from_fab`` for every message a node handles. That function extracts the whole
bundle into a temporary folder and checks every file against the bundle's hash list,
and then, when the bundle's folder under ``FLWR_HOME/apps`` already exists, returns
that folder and throws the extraction away: the installed files are not read again.
``benchmarks/bench_round_cost.py`` found about 0.12 s of every ClientApp process in the
extraction (a CKKS round runs four such processes on each node's cores), and where
Python may not write bytecode (``PYTHONDONTWRITEBYTECODE``) each process compiled the
bundle's modules again.

:func:`install_once` returns what Flower's install returns, and skips the extraction
when this node has installed a bundle with the same SHA-256 before: after Flower's own
install succeeds it compiles the installed modules' bytecode once and writes a record
named by the bundle's full hash, holding the installed folder
(``FLWR_HOME/apps/.fedembed-installed/``, owner-only, written atomically). A bundle it
has not seen, one whose record is missing, or one whose folder is gone goes through
Flower's install as before, so a bundle whose files do not match its hash list is still
refused. What it trusts is what Flower trusts: the installed folder on the node's own
disk.

:func:`install_bundles_once` puts it in the place of the runner's ``install_from_fab``
(the warm SuperExec does so once, before it forks a process for each message).
"""

from __future__ import annotations

import compileall
import hashlib
import logging
import os
from collections.abc import Callable
from pathlib import Path

from embedding_core.atomic_file import atomic_write_bytes

__all__ = ["RECORD_FOLDER", "install_bundles_once", "install_once"]

logger = logging.getLogger(__name__)

RECORD_FOLDER = ".fedembed-installed"
"""Under ``FLWR_HOME/apps`` (or the install folder given): one record per bundle hash."""

Installer = Callable[..., Path]


def _flower_install(fab: Path | bytes, install_dir: Path | None, skip_prompt: bool) -> Path:
    from flwr.cli.install import install_from_fab

    return Path(install_from_fab(fab, install_dir, skip_prompt=skip_prompt))


def _records(install_dir: Path | None) -> Path:
    if install_dir is not None:
        base = Path(install_dir).expanduser()
    else:
        from flwr.supercore.utils import get_flwr_home

        base = Path(get_flwr_home())
    return base / "apps" / RECORD_FOLDER


def install_once(
    fab_file: Path | bytes,
    install_dir: Path | None = None,
    skip_prompt: bool = True,
    *,
    install: Installer | None = None,
) -> Path:
    """Flower's ``install_from_fab``, extracting a bundle only the first time.

    What ``install_from_fab(fab_file, install_dir, skip_prompt)`` returns, without its
    extraction when this node installed the same bundle before.

    Args:
        fab_file: The bundle's bytes (what the ClientApp runner pulled); a path goes
            to Flower's install unchanged.
        install_dir: Flower's install folder; ``None`` for ``FLWR_HOME``.
        skip_prompt: Passed on to Flower (the runner passes ``True``).
        install: The installer to call for a bundle not yet installed (Flower's
            ``install_from_fab`` when ``None``).

    Raises:
        click.ClickException: From Flower's install: a malformed bundle, or one whose
            files do not match its hash list.
    """
    installer = install or _flower_install
    if not isinstance(fab_file, bytes):  # a path: Flower's own code, unchanged
        return installer(fab_file, install_dir, skip_prompt)
    digest = hashlib.sha256(fab_file).hexdigest()
    record = _records(install_dir) / digest
    try:
        folder = Path(record.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        folder = None
    if folder is not None and folder.is_dir():
        return folder
    folder = installer(fab_file, install_dir, skip_prompt)
    # Bytecode once per bundle: every process reads it, even one that may not write it
    # (PYTHONDONTWRITEBYTECODE); a file that does not compile is compiled at its import.
    compileall.compile_dir(str(folder), quiet=2)
    try:
        record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_bytes(record, str(folder).encode("utf-8"))
    except OSError as exc:  # the next message extracts again; nothing else changes
        logger.warning("fab: could not record the installed bundle (%s)", exc.strerror)
    return folder


def install_bundles_once() -> bool:
    """Make Flower's ClientApp runner install each bundle once (:func:`install_once`).

    Returns:
        Whether the runner's ``install_from_fab`` was replaced (False for a Flower whose
        runner no longer calls ``flwr.cli.install.install_from_fab``: it is left as it
        is, and a warning says so).
    """
    import flwr.cli.install as flower_install
    import flwr.supernode.runtime.run_clientapp as runner

    current = getattr(runner, "install_from_fab", None)
    if current is install_once:
        return True
    if current is not flower_install.install_from_fab:
        logger.warning("flower: its ClientApp runner's bundle install changed; left as it is")
        return False
    setattr(runner, "install_from_fab", install_once)  # noqa: B010 - Flower's name, not typed
    logger.info("fab: bundles are installed once per node (pid %d)", os.getpid())
    return True
