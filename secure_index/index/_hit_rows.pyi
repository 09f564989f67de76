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
    """
