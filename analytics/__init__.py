"""Pure analysis of embeddings: classification, clustering, anomaly detection.

A shared room under the components: no I/O beyond the records loader and saved models,
no Flower, no network. The node runs it on its own records (``fedembed node analyse``);
federated recipes reuse its steps (per-centroid sums and counts, a linear head).

The names load on first use (PEP 562): importing one algorithm (the federated k-means
imports :mod:`analytics.kmeans`) does not load the others' scikit-learn and matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from analytics.anomaly_threshold import (
        AnomalyDetector,
        Calibration,
        RatesAtThreshold,
        anomaly_auroc,
        calibrate_threshold,
        check_target_fpr,
        conformal_threshold,
        min_calibration_records,
        rates_at_threshold,
    )
    from analytics.cluster_description import ClusterDescription, class_tf_idf, describe_clusters
    from analytics.cluster_map import cluster_map, project_2d
    from analytics.cross_validation import (
        C_GRID,
        CrossValidation,
        FoldScore,
        check_folds,
        choose_c,
        cross_validate,
        stratified_folds,
    )
    from analytics.density_clustering import (
        DEFAULT_MIN_CLUSTER_SIZE,
        DEFAULT_MIN_SAMPLES,
        NOISE,
        DensityResult,
        density_clusters,
    )
    from analytics.kmeans import (
        KMeansResult,
        assign,
        centroid_sums,
        centroids_from,
        inertia,
        kmeans,
        kmeans_plus_plus,
    )
    from analytics.knn_anomaly import KnnAnomalyDetector, nearest_normal
    from analytics.labelled_texts import LabelledTexts, load_labelled_texts
    from analytics.linear_classifier import DEFAULT_C, LinearClassifier
    from analytics.mahalanobis_anomaly import MahalanobisAnomalyDetector, ledoit_wolf
    from analytics.silhouette_k import (
        DEFAULT_SILHOUETTE_SAMPLE,
        KChoice,
        choose_k,
        sample_silhouette,
    )

_SUBMODULE: dict[str, str] = {
    "AnomalyDetector": "anomaly_threshold",
    "C_GRID": "cross_validation",
    "Calibration": "anomaly_threshold",
    "ClusterDescription": "cluster_description",
    "CrossValidation": "cross_validation",
    "DEFAULT_C": "linear_classifier",
    "DEFAULT_MIN_CLUSTER_SIZE": "density_clustering",
    "DEFAULT_MIN_SAMPLES": "density_clustering",
    "DEFAULT_SILHOUETTE_SAMPLE": "silhouette_k",
    "DensityResult": "density_clustering",
    "FoldScore": "cross_validation",
    "KChoice": "silhouette_k",
    "KMeansResult": "kmeans",
    "KnnAnomalyDetector": "knn_anomaly",
    "LabelledTexts": "labelled_texts",
    "LinearClassifier": "linear_classifier",
    "MahalanobisAnomalyDetector": "mahalanobis_anomaly",
    "NOISE": "density_clustering",
    "RatesAtThreshold": "anomaly_threshold",
    "anomaly_auroc": "anomaly_threshold",
    "assign": "kmeans",
    "calibrate_threshold": "anomaly_threshold",
    "centroid_sums": "kmeans",
    "centroids_from": "kmeans",
    "check_folds": "cross_validation",
    "check_target_fpr": "anomaly_threshold",
    "choose_c": "cross_validation",
    "choose_k": "silhouette_k",
    "class_tf_idf": "cluster_description",
    "cluster_map": "cluster_map",
    "conformal_threshold": "anomaly_threshold",
    "cross_validate": "cross_validation",
    "density_clusters": "density_clustering",
    "describe_clusters": "cluster_description",
    "inertia": "kmeans",
    "kmeans": "kmeans",
    "kmeans_plus_plus": "kmeans",
    "ledoit_wolf": "mahalanobis_anomaly",
    "load_labelled_texts": "labelled_texts",
    "min_calibration_records": "anomaly_threshold",
    "nearest_normal": "knn_anomaly",
    "project_2d": "cluster_map",
    "rates_at_threshold": "anomaly_threshold",
    "sample_silhouette": "silhouette_k",
    "stratified_folds": "cross_validation",
}

__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

# Two functions share their module's name: bound now, or importing the module (which
# sets the package attribute to the module) would shadow the function.
from analytics.cluster_map import cluster_map  # noqa: E402
from analytics.kmeans import kmeans  # noqa: E402

__all__ = [
    "C_GRID",
    "DEFAULT_C",
    "DEFAULT_MIN_CLUSTER_SIZE",
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_SILHOUETTE_SAMPLE",
    "NOISE",
    "AnomalyDetector",
    "Calibration",
    "ClusterDescription",
    "CrossValidation",
    "DensityResult",
    "FoldScore",
    "KChoice",
    "KMeansResult",
    "KnnAnomalyDetector",
    "LabelledTexts",
    "LinearClassifier",
    "MahalanobisAnomalyDetector",
    "RatesAtThreshold",
    "anomaly_auroc",
    "assign",
    "calibrate_threshold",
    "centroid_sums",
    "centroids_from",
    "check_folds",
    "check_target_fpr",
    "choose_c",
    "choose_k",
    "class_tf_idf",
    "cluster_map",
    "conformal_threshold",
    "cross_validate",
    "density_clusters",
    "describe_clusters",
    "inertia",
    "kmeans",
    "kmeans_plus_plus",
    "ledoit_wolf",
    "load_labelled_texts",
    "min_calibration_records",
    "nearest_normal",
    "project_2d",
    "rates_at_threshold",
    "sample_silhouette",
    "stratified_folds",
]
