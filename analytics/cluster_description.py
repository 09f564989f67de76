"""What each cluster is about: its size, its most representative records, its top terms.

- **Representative records**: the members nearest to the cluster's anchor, its
  centroid (the members' mean, k-means' own centre) or its medoid (the member with the
  smallest total distance to the others, for a density cluster whose shape need not
  be round). The anchor comes first when it is a member.
- **Top terms**: class-based TF-IDF (c-TF-IDF, Grootendorst, "BERTopic", 2022): all
  texts of a cluster are one document; a term weighs ``tf(t, c) * log(1 + A / f(t))``
  with ``tf`` its frequency in the cluster (normalised by the cluster's word count),
  ``f(t)`` its frequency over all texts and ``A`` the mean word count per cluster. Terms
  frequent in a cluster and rare elsewhere come first. English stop words are left out.
- **Labels**, when the records carry them: the cluster's most common label and the
  share of its members that carry it (purity).

Descriptions hold record texts (they are written on the node for its owner); they are
never logged.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

__all__ = ["ClusterDescription", "class_tf_idf", "describe_clusters"]

logger = logging.getLogger(__name__)

DEFAULT_REPRESENTATIVES = 5
DEFAULT_TOP_TERMS = 8
MEDOID_SAMPLE = 1000  # members a medoid is searched among, at most (pairwise cost)


@dataclass(frozen=True)
class ClusterDescription:
    """One cluster, described.

    Attributes:
        cluster: Its number.
        size: Its members.
        share: Its members over all records (noise included).
        representative_ids: Ids of its most representative records, best first.
        representative_texts: Their texts, in the same order.
        top_terms: ``(term, c-TF-IDF weight)``, heaviest first.
        majority_label: Its most common label (``None`` without labels).
        purity: Share of its members carrying ``majority_label`` (``None`` without labels).
    """

    cluster: int
    size: int
    share: float
    representative_ids: list[str]
    representative_texts: list[str]
    top_terms: list[tuple[str, float]]
    majority_label: str | None = None
    purity: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The description as JSON-ready values."""
        return {
            "cluster": self.cluster,
            "size": self.size,
            "share": round(self.share, 6),
            "representatives": [
                {"id": i, "text": t}
                for i, t in zip(self.representative_ids, self.representative_texts, strict=True)
            ],
            "top_terms": [{"term": t, "weight": round(w, 6)} for t, w in self.top_terms],
            "majority_label": self.majority_label,
            "purity": None if self.purity is None else round(self.purity, 6),
        }


def class_tf_idf(
    texts: list[str], labels: NDArray[np.integer], k: int, *, top: int = DEFAULT_TOP_TERMS
) -> list[list[tuple[str, float]]]:
    """The ``top`` c-TF-IDF terms of each cluster ``0 .. k-1`` (negative labels: none).

    ``f(t)`` counts a term over all texts, those of noise records included.
    """
    label_array = np.asarray(labels, dtype=np.int64)
    vectorizer = CountVectorizer(stop_words="english", lowercase=True)
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # no term outside the stop words at all
        return [[] for _ in range(k)]
    vocabulary = vectorizer.get_feature_names_out()
    members = np.flatnonzero(label_array >= 0)
    membership = sparse.csr_matrix(
        (np.ones(members.size), (label_array[members], members)), shape=(k, len(texts))
    )
    per_cluster = np.asarray((membership @ counts).todense(), dtype=np.float64)  # (k, V)
    everywhere = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()  # f(t)
    words = per_cluster.sum(axis=1)
    average_words = float(words.mean()) if k else 0.0
    term_frequency = per_cluster / np.maximum(words, 1.0)[:, None]
    idf = np.log1p(average_words / np.maximum(everywhere, 1.0))
    weights = term_frequency * idf[None, :]
    described: list[list[tuple[str, float]]] = []
    for cluster in range(k):
        row = weights[cluster]
        order = np.argsort(-row, kind="stable")[:top]
        described.append([(str(vocabulary[i]), float(row[i])) for i in order if row[i] > 0])
    return described


def _anchor(members: NDArray[np.float64], anchor: str, rng: np.random.Generator) -> NDArray[Any]:
    if anchor == "centroid":
        return np.asarray(members.mean(axis=0))
    candidates = members
    if len(members) > MEDOID_SAMPLE:
        candidates = members[rng.choice(len(members), size=MEDOID_SAMPLE, replace=False)]
    squared = np.einsum("ij,ij->i", candidates, candidates)
    distances = np.sqrt(
        np.maximum(squared[:, None] - 2.0 * candidates @ candidates.T + squared[None, :], 0.0)
    )
    return np.asarray(candidates[int(np.argmin(distances.sum(axis=1)))])


def describe_clusters(
    vectors: NDArray[np.floating],
    labels: NDArray[np.integer],
    ids: list[str],
    texts: list[str],
    *,
    true_labels: list[str] | None = None,
    anchor: str = "centroid",
    representatives: int = DEFAULT_REPRESENTATIVES,
    top_terms: int = DEFAULT_TOP_TERMS,
    seed: int = 0,
) -> list[ClusterDescription]:
    """Describe clusters ``0 .. max(labels)`` (negative labels are noise: not described).

    Args:
        vectors: ``(n, d)`` the records' vectors.
        labels: ``(n,)`` each record's cluster, negative for noise.
        ids: Each record's id.
        texts: Each record's text.
        true_labels: Each record's known class, when the records carry one.
        anchor: ``"centroid"`` or ``"medoid"``: what representatives are nearest to.
        representatives: Records listed per cluster, at most.
        top_terms: Terms listed per cluster, at most.
        seed: Seed of the medoid's member sample (large clusters).
    """
    if anchor not in {"centroid", "medoid"}:
        raise ValueError(f"anchor must be 'centroid' or 'medoid', got {anchor!r}")
    matrix = np.asarray(vectors, dtype=np.float64)
    label_array = np.asarray(labels, dtype=np.int64)
    if not (len(matrix) == len(label_array) == len(ids) == len(texts)):
        raise ValueError("vectors, labels, ids and texts must describe the same records")
    k = int(label_array.max()) + 1 if label_array.size and label_array.max() >= 0 else 0
    terms = class_tf_idf(texts, label_array, k, top=top_terms)
    rng = np.random.default_rng(seed)
    described: list[ClusterDescription] = []
    for cluster in range(k):
        index = np.flatnonzero(label_array == cluster)
        if index.size == 0:
            continue
        members = matrix[index]
        centre = _anchor(members, anchor, rng)
        nearest = index[np.argsort(((members - centre) ** 2).sum(axis=1), kind="stable")]
        chosen = [int(i) for i in nearest[:representatives]]
        majority: str | None = None
        purity: float | None = None
        if true_labels is not None:
            majority, count = Counter(true_labels[i] for i in index).most_common(1)[0]
            purity = count / index.size
        described.append(
            ClusterDescription(
                cluster=cluster,
                size=int(index.size),
                share=index.size / len(label_array),
                representative_ids=[ids[i] for i in chosen],
                representative_texts=[texts[i] for i in chosen],
                top_terms=terms[cluster],
                majority_label=majority,
                purity=purity,
            )
        )
    logger.info("described %d clusters of %d records", len(described), len(label_array))
    return described
