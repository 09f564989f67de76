"""Pure analysis of embeddings: classification, clustering, anomaly detection.

A shared room under the components: no I/O beyond the records loader and saved models,
no Flower, no network. The node runs it on its own records (``fedembed node analyse``);
federated recipes reuse its steps (per-centroid sums and counts, a linear head).
"""

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
from analytics.silhouette_k import DEFAULT_SILHOUETTE_SAMPLE, KChoice, choose_k, sample_silhouette

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
