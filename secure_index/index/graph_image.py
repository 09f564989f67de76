"""The in-memory image of an hnswlib graph: what the store seals into ``graph-*.sealed``.

hnswlib's own ``save_index``/``load_index`` need a file path; its pickle state does not.
The image is a small JSON header (the state's scalars and the layout of its arrays)
followed by the arrays' bytes, each aligned to 64 bytes. Writing hands the arrays to the
sealer as memory views (no plaintext copy, no file); reading decrypts into one anonymous
buffer and rebuilds the index from views into it (``Index.__setstate__``, the documented
pickle path), so a plaintext graph never exists as a file, not even on tmpfs.
"""

from __future__ import annotations

import json
import mmap
import struct
from typing import Any

import hnswlib
import numpy as np

__all__ = ["GRAPH_MAGIC", "anonymous_buffer", "graph_chunks", "graph_from_buffer"]

GRAPH_MAGIC = b"FEDHNSW1"
_LENGTH = struct.Struct(">I")
_ALIGN = 64
_ARRAYS = "arrays"
_SCALARS = "scalars"


def _pad(size: int) -> int:
    return -size % _ALIGN


def graph_chunks(index: hnswlib.Index) -> tuple[list[memoryview | bytes], int]:
    """The image of ``index`` as chunks (views of the state's arrays) and its length.

    Call it where no other thread mutates the index (the collection's read lock).
    """
    (state,) = index.__getstate__()
    scalars = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    arrays = [(k, v) for k, v in state.items() if isinstance(v, np.ndarray)]
    layout = [[name, a.dtype.str, int(a.size)] for name, a in arrays]
    header = json.dumps({_SCALARS: scalars, _ARRAYS: layout}, sort_keys=True).encode()
    chunks: list[memoryview | bytes] = [GRAPH_MAGIC, _LENGTH.pack(len(header)), header]
    size = len(GRAPH_MAGIC) + _LENGTH.size + len(header)
    chunks.append(b"\0" * _pad(size))
    size += _pad(size)
    for _, array in arrays:
        data = memoryview(np.ascontiguousarray(array).data).cast("B")
        chunks += [data, b"\0" * _pad(data.nbytes)]
        size += data.nbytes + _pad(data.nbytes)
    return chunks, size


def graph_from_buffer(buffer: mmap.mmap | bytearray | memoryview) -> hnswlib.Index:
    """Rebuild the index from an image in ``buffer`` (hnswlib copies what it keeps)."""
    view = memoryview(buffer)
    if bytes(view[: len(GRAPH_MAGIC)]) != GRAPH_MAGIC:
        raise ValueError("not an hnswlib graph image")
    at = len(GRAPH_MAGIC)
    (length,) = _LENGTH.unpack_from(view, at)
    at += _LENGTH.size
    header = json.loads(bytes(view[at : at + length]))
    at += length
    at += _pad(at)
    state: dict[str, Any] = dict(header[_SCALARS])
    for name, dtype, count in header[_ARRAYS]:
        array = np.frombuffer(view, dtype=np.dtype(dtype), count=count, offset=at)
        state[name] = array
        at += array.nbytes + _pad(array.nbytes)
    index = hnswlib.Index.__new__(hnswlib.Index)
    index.__setstate__((state,))
    state.clear()
    view.release()
    return index


def anonymous_buffer(size: int) -> mmap.mmap:
    """Private anonymous memory for a decrypted image (never backed by a file).

    Asks for transparent huge pages (``MADV_HUGEPAGE``) and does not pre-fault: the
    threads that decrypt into the buffer fault its 2 MiB pages in, in parallel and without
    the GIL. Measured on a 170 MB image here: opening a 100k-vector collection took 1.33x
    hnswlib's own load this way, 1.45x when the buffer was pre-faulted first
    (``MADV_POPULATE_WRITE``, which holds the GIL) and 1.7-1.9x with 4 KiB pages
    (``MAP_POPULATE``: the fallback where huge pages cannot be requested).
    """
    length = max(size, 1)
    buffer = mmap.mmap(-1, length, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        buffer.madvise(mmap.MADV_HUGEPAGE)
    except (AttributeError, OSError):  # no transparent huge pages here
        buffer.close()
        flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | getattr(mmap, "MAP_POPULATE", 0)
        buffer = mmap.mmap(-1, length, flags=flags)
    return buffer
