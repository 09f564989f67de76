"""The node's saved anomaly detector: fit, calibrate, flag, explain, save and load.

A detector (k-NN distance, Mahalanobis or relative Mahalanobis, from :mod:`analytics`)
learns the normal records' vectors; its threshold at a target false-positive rate is
calibrated on normal records the detector did not fit (cross-fitting,
:func:`analytics.calibrate_threshold`). The model keeps the normal vectors and ids, so a
flagged record is explained by its nearest normal records (ids and cosine
similarities). Saved as a folder: ``detector.npz`` (normal vectors and ids, the
detector's arrays) and ``manifest.json`` (the encoder that made the vectors, settings,
threshold, metrics, date, SHA-256 of ``detector.npz``); loading verifies the hash and
refuses vectors of another encoder space or adapter.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from analytics import (
    Calibration,
    KnnAnomalyDetector,
    MahalanobisAnomalyDetector,
    calibrate_threshold,
    check_target_fpr,
    min_calibration_records,
    nearest_normal,
)
from analytics.anomaly_threshold import DEFAULT_FOLDS, SPLIT_FRACTION
from embedding_core.atomic_file import atomic_write_bytes, atomic_write_json
from embedding_core.errors import FedembedError

__all__ = [
    "DETECTORS",
    "AnomalyModel",
    "check_sizes",
    "detector_folder",
    "fit_anomaly_model",
    "make_detector",
    "read_manifest",
]

logger = logging.getLogger(__name__)

DETECTORS = ("knn", "mahalanobis", "relative-mahalanobis")
DETECTOR_FORMAT = "fedembed-anomaly-detector"
DETECTOR_FORMAT_VERSION = 1
MANIFEST_FILE = "manifest.json"
WEIGHTS_FILE = "detector.npz"

Detector = KnnAnomalyDetector | MahalanobisAnomalyDetector


def make_detector(detector: str, k: int) -> Detector:
    """A fresh, unfitted detector named ``detector``."""
    if detector == "knn":
        return KnnAnomalyDetector(k=k)
    if detector in {"mahalanobis", "relative-mahalanobis"}:
        return MahalanobisAnomalyDetector(relative=detector == "relative-mahalanobis")
    raise FedembedError(
        f"detector={detector!r} is unknown",
        expected=f"one of {', '.join(DETECTORS)}",
        fix="pass detector='knn', detector='mahalanobis' or detector='relative-mahalanobis'",
    )


def _fit_size(n: int, folds: int) -> int:
    """Normal records each calibration detector is fitted on."""
    held = -(-n // folds) if folds > 1 else max(1, round(n * SPLIT_FRACTION))
    return n - held


def check_sizes(detector: str, k: int, n: int, target_fpr: float, folds: int) -> None:
    """Refuse, before any work, a normal set too small for ``k`` or ``target_fpr``."""
    if k < 1 or k > n:
        raise FedembedError(
            f"k={k} is larger than the normal set ({n} records)" if k > n else f"k={k} < 1",
            expected=f"1 <= k <= {n} (the neighbours each record is compared with)",
            fix="pass a smaller k, or more normal records",
        )
    if detector == "knn" and k > _fit_size(n, folds):
        needed = k
        while _fit_size(needed, folds) < k:
            needed += 1
        raise FedembedError(
            f"k={k} is larger than the {_fit_size(n, folds)} normal records the detector "
            f"is fitted on while calibrating (of {n}: a part is held out to set the threshold)",
            expected=f"k <= {_fit_size(n, folds)}, or at least {needed} normal records",
            fix="pass a smaller k, or more normal records",
        )
    held = n if folds > 1 else n - _fit_size(n, folds)
    needed = min_calibration_records(target_fpr)
    if held < needed:
        least = needed if folds > 1 else math.ceil(needed / SPLIT_FRACTION)
        raise FedembedError(
            f"{n} normal records are too few to calibrate target_fpr={target_fpr:g}",
            expected=f"at least {least} normal records at target_fpr={target_fpr:g}",
            fix="pass more normal records, or a larger target_fpr",
        )


@dataclass
class AnomalyModel:
    """A fitted detector, its calibrated threshold and the normal set it explains with.

    Attributes:
        detector: The fitted detector (``knn`` or ``mahalanobis``).
        threshold: A record scoring strictly above it is flagged.
        target_fpr: The false-positive rate the threshold was calibrated for.
        calibration: How the threshold was calibrated (``crossfit-5``).
        k: Neighbours per record (the k-NN score; the explanations).
        normal_vectors: The normal records' unit vectors.
        normal_ids: The normal records' ids.
        normal_labels: The labels the normal set holds (sorted; empty when unlabelled).
        encoder: What made the vectors (``RecordEncoder.description()`` + adapter hash).
        metrics: What fitting measured (calibration rate, and AUROC etc. once scored).
    """

    detector: Detector
    threshold: float
    target_fpr: float
    calibration: str
    k: int
    normal_vectors: NDArray[np.float32]
    normal_ids: list[str]
    normal_labels: list[str] = field(default_factory=list)
    encoder: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """``knn`` or ``mahalanobis``."""
        return self.detector.name

    def score(self, vectors: NDArray[np.floating]) -> NDArray[np.float64]:
        """Anomaly scores of ``vectors`` (higher: more anomalous)."""
        return self.detector.score(vectors)

    def flag(self, scores: NDArray[np.floating]) -> NDArray[np.bool_]:
        """Which scores are above the threshold."""
        return np.asarray(scores, dtype=np.float64) > self.threshold

    def explain(
        self, vectors: NDArray[np.floating], n: int | None = None
    ) -> list[list[tuple[str, float]]]:
        """Each record's ``n`` (default ``k``) nearest normal records: (id, similarity)."""
        count = min(n or self.k, len(self.normal_ids))
        indices, sims = nearest_normal(vectors, self.normal_vectors, count)
        return [
            [(self.normal_ids[i], round(float(s), 6)) for i, s in zip(row, row_sims, strict=True)]
            for row, row_sims in zip(indices, sims, strict=True)
        ]

    def check_encoder(self, description: dict[str, Any]) -> None:
        """Refuse vectors of another encoder space or adapter than the detector's."""
        for key, flag in (("encoder_space", "--model/--encoder-backend"), ("adapter_sha256", "")):
            mine, theirs = self.encoder.get(key), description.get(key)
            if mine != theirs:
                made = (
                    f"model {self.encoder.get('model_id')} with the "
                    f"{self.encoder.get('encoder_backend')} backend"
                    if key == "encoder_space"
                    else f"adapter {self.encoder.get('adapter') or '(none)'}"
                )
                raise FedembedError(
                    f"the detector was fitted on vectors of another {key.split('_')[0]} "
                    f"(it was made with {made})",
                    expected="records encoded exactly as the normal records were",
                    fix=f"pass the {flag or '--adapter'} the detector was made with, "
                    "or fit a new detector on these records",
                )

    def save(self, folder: str | Path) -> Path:
        """Write ``detector.npz`` and ``manifest.json`` into ``folder``; the manifest path."""
        target = Path(folder)
        target.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, NDArray[np.generic]] = {
            "normal": self.normal_vectors,
            "normal_ids": np.asarray(self.normal_ids, dtype=str),
            **self.detector.state(),  # the k-NN detector's "normal": the same array
        }
        buffer = io.BytesIO()
        np.savez(buffer, allow_pickle=False, **arrays)
        weights = buffer.getvalue()
        atomic_write_bytes(target / WEIGHTS_FILE, weights)
        manifest = {
            "format": DETECTOR_FORMAT,
            "format_version": DETECTOR_FORMAT_VERSION,
            "detector": self.name,
            "settings": {
                **self.detector.settings(),
                "k": self.k,
                "target_fpr": self.target_fpr,
                "calibration": self.calibration,
            },
            "threshold": self.threshold,
            "normal_records": len(self.normal_ids),
            "normal_labels": self.normal_labels,
            "encoder": self.encoder,
            "metrics": self.metrics,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "weights_file": WEIGHTS_FILE,
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
        }
        atomic_write_json(target / MANIFEST_FILE, manifest)
        logger.info("anomaly detector saved: %s (%s)", target, self.name)
        return target / MANIFEST_FILE

    @classmethod
    def load(cls, folder: str | Path, *, encoder: dict[str, Any] | None = None) -> AnomalyModel:
        """Load a saved detector, verifying its hash (and ``encoder``'s space, if given).

        ``folder`` is the ``detector/`` folder, or the folder holding it (the ``--out``
        folder of ``fedembed node analyse anomalies``).
        """
        source = detector_folder(folder)
        manifest = read_manifest(source)
        weights_path = source / str(manifest.get("weights_file", WEIGHTS_FILE))
        data = weights_path.read_bytes() if weights_path.is_file() else b""
        if hashlib.sha256(data).hexdigest() != manifest.get("weights_sha256"):
            raise FedembedError(
                f"{weights_path} is missing or does not match the SHA-256 in its manifest",
                expected="the detector file written together with the manifest",
                fix="restore both files, or fit the detector again",
            )
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        settings = dict(manifest["settings"])
        name = str(manifest["detector"])
        detector: Detector = (
            KnnAnomalyDetector.restore(settings, arrays)
            if name == "knn"
            else MahalanobisAnomalyDetector.restore(settings, arrays)
        )
        model = cls(
            detector=detector,
            threshold=float(manifest["threshold"]),
            target_fpr=float(settings["target_fpr"]),
            calibration=str(settings["calibration"]),
            k=int(settings["k"]),
            normal_vectors=np.asarray(arrays["normal"], dtype=np.float32),
            normal_ids=[str(i) for i in arrays["normal_ids"]],
            normal_labels=[str(label) for label in manifest.get("normal_labels", [])],
            encoder=dict(manifest.get("encoder", {})),
            metrics=dict(manifest.get("metrics", {})),
        )
        if encoder is not None:
            model.check_encoder(encoder)
        return model


def detector_folder(folder: str | Path) -> Path:
    """``folder`` itself, or its ``detector/`` subfolder when only that holds a manifest."""
    source = Path(folder)
    inner = source / "detector"
    if not (source / MANIFEST_FILE).is_file() and (inner / MANIFEST_FILE).is_file():
        return inner
    return source


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The manifest of the detector saved in ``folder`` (or its ``detector/``), unverified."""
    manifest_path = detector_folder(folder) / MANIFEST_FILE
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FedembedError(
            f"no readable detector manifest at {manifest_path} ({exc.__class__.__name__})",
            expected=f"a folder holding {MANIFEST_FILE} and {WEIGHTS_FILE}",
            fix="pass the detector/ folder that `fedembed node analyse anomalies --out` wrote",
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != DETECTOR_FORMAT:
        raise FedembedError(
            f"{manifest_path} is not a fedembed anomaly detector manifest",
            expected=f'"format": "{DETECTOR_FORMAT}"',
            fix="pass the detector/ folder that `fedembed node analyse anomalies --out` wrote",
        )
    return manifest


def fit_anomaly_model(
    normal_vectors: NDArray[np.floating],
    normal_ids: list[str],
    *,
    labels: list[str] | None = None,
    detector: str = "knn",
    k: int = 10,
    target_fpr: float = 0.05,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    encoder: dict[str, Any] | None = None,
) -> AnomalyModel:
    """Fit ``detector`` on the normal vectors and calibrate its threshold out of sample.

    ``labels`` (the normal records' classes) give the Mahalanobis detector one mean per
    class (Lee et al. 2018), and are required by ``relative-mahalanobis`` (Ren et al.
    2021); the k-NN detector ignores them.
    """
    alpha = check_target_fpr(target_fpr)
    vectors = np.asarray(normal_vectors, dtype=np.float32)
    if vectors.ndim != 2 or vectors.shape[0] != len(normal_ids):
        raise FedembedError(
            f"{vectors.shape[0] if vectors.ndim else 0} vectors for {len(normal_ids)} ids",
            expected="one vector per normal record",
        )
    make_detector(detector, k)
    if detector == "relative-mahalanobis" and labels is None:
        raise FedembedError(
            "detector='relative-mahalanobis' needs the normal records' labels",
            expected="labels: one class per normal record",
            fix="pass labels, or detector='mahalanobis' (one Gaussian for all records)",
        )
    check_sizes(detector, k, vectors.shape[0], alpha, folds)
    calibration: Calibration = calibrate_threshold(
        lambda: make_detector(detector, k), vectors, alpha, labels=labels, folds=folds, seed=seed
    )
    final = make_detector(detector, k).fit(vectors, labels)
    if isinstance(final, KnnAnomalyDetector):
        # The vectors the k-NN detector keeps (unit length, as it scores) are the ones
        # saved, so a reloaded detector scores exactly as this one does.
        vectors = final.state()["normal"].astype(np.float32, copy=False)
    return AnomalyModel(
        detector=final,
        threshold=calibration.threshold,
        target_fpr=alpha,
        calibration=calibration.method,
        k=k,
        normal_vectors=vectors,
        normal_ids=list(normal_ids),
        normal_labels=sorted(set(labels)) if labels is not None else [],
        encoder=dict(encoder or {}),
        metrics={"calibration_fpr": calibration.calibration_fpr},
    )
