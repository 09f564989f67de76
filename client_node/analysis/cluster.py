"""Cluster the node's records: k-means (k given or chosen by silhouette) or density.

The records are encoded through the embedding cache (:class:`RecordEncoder`, adapter on
or off), then clustered on the node:

- ``method="kmeans"``: k-means++ and Lloyd (:func:`analytics.kmeans`) with ``k`` given,
  or chosen in ``k_range`` by the silhouette of a seeded sample
  (:func:`analytics.choose_k`);
- ``method="density"``: HDBSCAN (:func:`analytics.density_clusters`) finds k itself and
  leaves the records in no dense region as noise.

Every cluster is described (size, most representative records, top c-TF-IDF terms);
quality is the silhouette (on a seeded sample; noise left out) and, when the records
carry labels, NMI and ARI against them. For the density method NMI and ARI count noise
as one more group (``nmi``, ``ari``) and are also given on the clustered records only
(``nmi_clustered``, ``ari_clustered``). ``out`` receives ``clusters.json`` (settings,
quality, the encoder, every description), ``assignments.jsonl`` (each record's id and
cluster, ``-1`` for noise) and ``map.png`` (a 2-D PCA map). Nothing leaves the node;
texts are written only to the node's own ``clusters.json``, never logged.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from analytics import (
    DEFAULT_MIN_CLUSTER_SIZE,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_SILHOUETTE_SAMPLE,
    ClusterDescription,
    LabelledTexts,
    choose_k,
    cluster_map,
    density_clusters,
    describe_clusters,
    kmeans,
    sample_silhouette,
)
from client_node.analysis.record_vectors import RecordEncoder
from embedding_core.atomic_file import atomic_write_bytes, atomic_write_json
from embedding_core.errors import FedembedError

__all__ = [
    "CLUSTER_METHODS",
    "DEFAULT_K_RANGE",
    "ClusterReport",
    "cluster_records",
    "cluster_vectors",
    "write_cluster_outputs",
]

logger = logging.getLogger(__name__)

CLUSTER_METHODS = ("kmeans", "density")
DEFAULT_K_RANGE = (2, 30)
DEFAULT_N_INIT = 4


@dataclass
class ClusterReport:
    """What clustering the records found.

    Attributes:
        method: ``kmeans`` or ``density``.
        k: Clusters found (noise not counted).
        k_chosen_by: ``given``, ``silhouette`` (the best of ``k_scores``) or ``density``.
        ids: Each record's id, in input order.
        labels: Each record's cluster, ``-1`` for noise.
        clusters: Each cluster described, by cluster number.
        metrics: ``silhouette``, ``nmi``, ``ari`` (``None`` where not measurable),
            ``noise``, and per method ``inertia`` or ``nmi_clustered``/``ari_clustered``.
        k_scores: The silhouette of each k tried, when k was chosen by silhouette.
        settings: The settings that made it (for ``clusters.json``).
        seconds: Wall time of the clustering (encoding excluded).
    """

    method: str
    k: int
    k_chosen_by: str
    ids: list[str]
    labels: NDArray[np.int64]
    clusters: list[ClusterDescription]
    metrics: dict[str, float | int | None]
    k_scores: dict[int, float] | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def records(self) -> int:
        """Number of records clustered."""
        return len(self.ids)

    def summary(self) -> dict[str, Any]:
        """The one-line JSON result: ``k``, quality, ``method``, ``records``, ``noise``."""
        return {
            "method": self.method,
            "k": self.k,
            "k_chosen_by": self.k_chosen_by,
            "records": self.records,
            **self.metrics,
            "k_scores": None
            if self.k_scores is None
            else {str(k): round(s, 6) for k, s in self.k_scores.items()},
            "sizes": [c.size for c in self.clusters],
            "seconds": round(self.seconds, 3),
        }


def _fail(problem: str, expected: str, fix: str) -> FedembedError:
    return FedembedError(problem, expected=expected, fix=fix)


def _check(
    n: int, method: str, k: int | None, k_range: tuple[int, int] | None, min_cluster_size: int
) -> None:
    if method not in CLUSTER_METHODS:
        raise _fail(
            f"method={method!r} is not a clustering method",
            f"one of {', '.join(CLUSTER_METHODS)}",
            "pass method=kmeans (k given or chosen by silhouette) or method=density",
        )
    if method == "density":
        if k is not None or k_range is not None:
            raise _fail(
                "k or k_range was given with method=density, which finds k itself",
                "no k with method=density",
                "leave out k and k_range, or pass method=kmeans",
            )
        if n < min_cluster_size:
            raise _fail(
                f"there are fewer records ({n}) than min_cluster_size={min_cluster_size}",
                "at least as many records as the smallest cluster may have",
                "pass a smaller min_cluster_size or more records",
            )
        return
    if k is not None and k_range is not None:
        raise _fail(
            "both k and k_range were given",
            "k (a fixed number of clusters) or k_range (k chosen by silhouette)",
            "pass only one of them",
        )
    if k is not None:
        if k < 2:
            raise _fail(f"k={k} is fewer than 2 clusters", "k of at least 2", "pass k=2 or more")
        if n < k:
            raise _fail(
                f"there are fewer records ({n}) than k={k} clusters",
                "at least one record per cluster",
                f"pass a smaller k (at most {n}) or more records",
            )
        return
    low, high = k_range or DEFAULT_K_RANGE
    if low < 2 or high < low:
        raise _fail(
            f"k_range={low}:{high} is not a range of cluster counts",
            "k_range=LOW:HIGH with 2 <= LOW <= HIGH",
            "pass e.g. k_range=2:30",
        )
    if n <= low:
        raise _fail(
            f"there are too few records ({n}) for k_range={low}:{high}",
            f"more records than the low end of k_range ({low}): a silhouette needs them",
            "pass a smaller low end of k_range or more records",
        )


def _agreement(truth: list[str], labels: NDArray[np.int64]) -> tuple[float, float]:
    return (
        float(normalized_mutual_info_score(truth, labels)),
        float(adjusted_rand_score(truth, labels)),
    )


def cluster_vectors(
    vectors: NDArray[np.floating],
    ids: list[str],
    texts: list[str],
    *,
    true_labels: list[str] | None = None,
    k: int | None = None,
    k_range: tuple[int, int] | None = None,
    method: str = "kmeans",
    seed: int = 0,
    n_init: int = DEFAULT_N_INIT,
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
    min_samples: int | None = DEFAULT_MIN_SAMPLES,
    sample_size: int = DEFAULT_SILHOUETTE_SAMPLE,
) -> ClusterReport:
    """Cluster already-encoded records and describe the clusters (see the module).

    Raises:
        FedembedError: An unknown method, ``k < 2``, fewer records than ``k`` (or than
            ``min_cluster_size``), a bad ``k_range``, or ``k`` with ``method="density"``.
    """
    n = len(ids)
    _check(n, method, k, k_range, min_cluster_size)
    started = time.perf_counter()
    metrics: dict[str, float | int | None] = {}
    k_scores: dict[int, float] | None = None
    if method == "kmeans":
        chosen_by = "given"
        if k is None:
            choice = choose_k(
                vectors, k_range or DEFAULT_K_RANGE, sample_size=sample_size, seed=seed
            )
            k, k_scores, chosen_by = choice.k, choice.scores, "silhouette"
        fitted = kmeans(vectors, k, n_init=n_init, seed=seed)
        labels = fitted.labels
        metrics["inertia"] = fitted.inertia
        metrics["noise"] = 0
    else:
        chosen_by = "density"
        found = density_clusters(
            vectors, min_cluster_size=min_cluster_size, min_samples=min_samples, seed=seed
        )
        labels, k = found.labels, found.k
        metrics["noise"] = found.noise
        metrics["noise_fraction"] = found.noise_fraction
    metrics["silhouette"] = sample_silhouette(vectors, labels, sample_size=sample_size, seed=seed)
    metrics["nmi"], metrics["ari"] = None, None
    if true_labels is not None:
        metrics["nmi"], metrics["ari"] = _agreement(true_labels, labels)
        if method == "density":
            kept = np.flatnonzero(labels >= 0)
            clustered = (
                _agreement([true_labels[i] for i in kept], labels[kept]) if kept.size else None
            )
            metrics["nmi_clustered"], metrics["ari_clustered"] = clustered or (None, None)
    clusters = describe_clusters(
        vectors,
        labels,
        ids,
        texts,
        true_labels=true_labels,
        anchor="centroid" if method == "kmeans" else "medoid",
        seed=seed,
    )
    settings: dict[str, Any] = {"method": method, "seed": seed, "silhouette_sample": sample_size}
    if method == "kmeans":
        settings.update(
            n_init=n_init, k_range=list(k_range or DEFAULT_K_RANGE) if k_scores else None
        )
    else:
        settings.update(min_cluster_size=min_cluster_size, min_samples=min_samples)
    return ClusterReport(
        method=method,
        k=k,
        k_chosen_by=chosen_by,
        ids=list(ids),
        labels=np.asarray(labels, dtype=np.int64),
        clusters=clusters,
        metrics=metrics,
        k_scores=k_scores,
        settings=settings,
        seconds=time.perf_counter() - started,
    )


def write_cluster_outputs(
    out: Path,
    report: ClusterReport,
    vectors: NDArray[np.floating],
    encoder: dict[str, str | None] | None = None,
) -> list[Path]:
    """Write ``clusters.json``, ``assignments.jsonl`` and ``map.png`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    document = {
        **report.summary(),
        "settings": report.settings,
        "encoder": encoder,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "clusters": [c.to_json() for c in report.clusters],
    }
    atomic_write_json(out / "clusters.json", document)
    rows = (
        json.dumps({"id": i, "cluster": int(c), "noise": bool(c < 0)}) + "\n"
        for i, c in zip(report.ids, report.labels, strict=True)
    )
    atomic_write_bytes(out / "assignments.jsonl", "".join(rows).encode("utf-8"))
    picture = cluster_map(vectors, report.labels, out / "map.png", title=report.method)
    logger.info("clustering written to %s", out)
    return [out / "clusters.json", out / "assignments.jsonl", picture]


def cluster_records(
    records: LabelledTexts,
    encoder: RecordEncoder,
    *,
    k: int | None = None,
    k_range: tuple[int, int] | None = None,
    method: str = "kmeans",
    out: Path | None = None,
    seed: int = 0,
    n_init: int = DEFAULT_N_INIT,
    min_cluster_size: int = DEFAULT_MIN_CLUSTER_SIZE,
    min_samples: int | None = DEFAULT_MIN_SAMPLES,
    sample_size: int = DEFAULT_SILHOUETTE_SAMPLE,
) -> ClusterReport:
    """Encode the node's records and cluster them (see the module); write ``out``.

    ``k`` fixes the number of k-means clusters; without it k is chosen by silhouette in
    ``k_range`` (default 2:30). Labels, when ``records`` carry them, give NMI and ARI.

    Raises:
        FedembedError: Bad settings (see :func:`cluster_vectors`), checked before the
            records are encoded.
    """
    _check(len(records), method, k, k_range, min_cluster_size)
    vectors = encoder.encode(records.texts, what="encode records to cluster")
    report = cluster_vectors(
        vectors,
        records.ids,
        records.texts,
        true_labels=records.labels,
        k=k,
        k_range=k_range,
        method=method,
        seed=seed,
        n_init=n_init,
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        sample_size=sample_size,
    )
    if out is not None:
        write_cluster_outputs(out, report, vectors, encoder.description())
    return report
