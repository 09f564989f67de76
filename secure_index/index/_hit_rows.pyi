"""Type stub of the compiled hit builder (``_hit_rows.c``)."""

from typing import Any

import numpy as np

def hit_rows(
    labels: np.ndarray,
    distances: np.ndarray,
    doc_ids: list[str | None],
    owners: list[str | None],
    hit_type: type[tuple[Any, ...]],
    offset: float,
    finite_only: bool,
    /,
) -> list[list[Any]] | None:
    """Hits per row of hnswlib's ``(labels, distances)``, skipping tombstones.

    A label past ``doc_ids`` or naming ``None`` there is skipped; score is
    ``offset - distance``; ``None`` when ``finite_only`` and a distance is not finite.

    Raises:
        TypeError: An argument of the wrong type: ``doc_ids`` or ``owners`` not a list,
            labels not 8-byte integers, distances not float32, ``hit_type`` not a tuple
            subclass without a ``__dict__``.
        ValueError: The arrays are not 2-D of one shape, or not C-contiguous.
    """
