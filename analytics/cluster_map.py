"""A 2-D map of the clusters: PCA to two dimensions, one colour per cluster, as a PNG.

The records' vectors are projected on their first two principal components (seeded,
deterministic) and drawn as points coloured by cluster; noise (label ``-1``) is drawn
in light grey beneath the clusters. Each cluster's number sits at its members' mean
position on the map. Matplotlib's Agg backend draws without a display.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = ["MAP_POINTS", "cluster_map", "project_2d"]

logger = logging.getLogger(__name__)

MAP_POINTS = 20_000
"""Points drawn at most (a seeded sample beyond): the picture stays readable and small."""


def project_2d(vectors: NDArray[np.floating], *, seed: int = 0) -> NDArray[np.float64]:
    """``(n, 2)`` coordinates: the vectors on their first two principal components."""
    matrix = np.asarray(vectors, dtype=np.float64)
    if matrix.shape[0] < 2 or matrix.shape[1] < 2:
        return np.zeros((matrix.shape[0], 2), dtype=np.float64)
    from sklearn.decomposition import PCA

    return np.asarray(PCA(n_components=2, random_state=seed).fit_transform(matrix))


def _colour(cluster: int, count: int) -> tuple[float, float, float, float]:
    """A colour per cluster: tab10 up to 10 clusters, else hues spread by the golden ratio."""
    from matplotlib import colormaps

    if count <= 10:
        return tuple(colormaps["tab10"](cluster))  # type: ignore[return-value]
    hue = (cluster * 0.618033988749895) % 1.0
    return tuple(colormaps["turbo"](0.05 + 0.9 * hue))  # type: ignore[return-value]


def cluster_map(
    vectors: NDArray[np.floating],
    labels: NDArray[np.integer],
    path: str | Path,
    *,
    title: str = "clusters",
    seed: int = 0,
) -> Path:
    """Draw the map of ``labels`` over ``vectors`` into the PNG ``path``; returns it."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    label_array = np.asarray(labels, dtype=np.int64)
    points = project_2d(vectors, seed=seed)
    shown = np.arange(len(label_array))
    if len(shown) > MAP_POINTS:
        shown = np.sort(np.random.default_rng(seed).choice(len(shown), MAP_POINTS, replace=False))
    clusters = sorted(int(c) for c in np.unique(label_array) if c >= 0)
    size = float(np.clip(6000.0 / max(len(shown), 1), 3.0, 24.0))
    figure, axes = plt.subplots(figsize=(9, 7), dpi=110)
    try:
        noise = shown[label_array[shown] < 0]
        if noise.size:
            axes.scatter(
                points[noise, 0],
                points[noise, 1],
                s=0.6 * size,
                c="#bbbbbb",
                alpha=0.4,
                linewidths=0,
                label=f"noise ({noise.size})",
            )
        for cluster in clusters:
            members = shown[label_array[shown] == cluster]
            colour = _colour(cluster, len(clusters))
            axes.scatter(
                points[members, 0],
                points[members, 1],
                s=size,
                color=colour,
                alpha=0.75,
                linewidths=0,
            )
            centre = points[label_array == cluster].mean(axis=0)
            axes.annotate(
                str(cluster), (centre[0], centre[1]), fontsize=7, ha="center", va="center"
            )
        axes.set_title(f"{title}: {len(clusters)} clusters, {len(label_array)} records")
        axes.set_xlabel("principal component 1")
        axes.set_ylabel("principal component 2")
        if noise.size:
            axes.legend(loc="upper right", fontsize=8)
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        figure.tight_layout()
        figure.savefig(target, format="png")
    finally:
        plt.close(figure)
    logger.info("cluster map of %d records written to %s", len(label_array), target.name)
    return target
