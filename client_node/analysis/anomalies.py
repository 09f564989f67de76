"""Find the node's unusual records: fit on its normal records, score and flag new ones.

:func:`find_anomalies` encodes the node's normal and new records, fits an
:class:`~client_node.analysis.anomaly_model.AnomalyModel` on the normal ones (threshold
calibrated out of sample at a target false-positive rate), scores and flags the new
ones, and explains each flagged record by its nearest normal records. With ground truth
(a true/false column, or labels where a label the normal set lacks counts as anomalous)
the AUROC and the rates the threshold actually reached are measured. ``--out`` files:
``scores.jsonl``, ``flagged.jsonl`` (with the explanations) and ``detector/``.
:func:`score_with_saved_detector` scores new records with such a saved ``detector/`` and
its calibrated threshold, in the encoder space it was fitted in; it holds the normal
records' vectors and ids, never their texts, so its explanations name normal records by
id. Texts are written only to the node's own ``flagged.jsonl`` (mode 0600), never logged.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from analytics import LabelledTexts, anomaly_auroc, check_target_fpr, rates_at_threshold
from analytics.anomaly_threshold import DEFAULT_FOLDS
from client_node.analysis.anomaly_model import (
    DETECTORS,
    AnomalyModel,
    check_sizes,
    detector_folder,
    fit_anomaly_model,
    make_detector,
    read_manifest,
)
from client_node.analysis.classify import encoder_identity
from client_node.analysis.record_vectors import RecordEncoder
from embedding_core.atomic_file import atomic_write_bytes
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND
from embedding_core.errors import DataFormatError, FedembedError

__all__ = [
    "DETECTORS",
    "AnomalyModel",
    "AnomalyReport",
    "encoder_identity",
    "find_anomalies",
    "fit_anomaly_model",
    "is_anomaly_from_labels",
    "is_anomaly_from_truth",
    "saved_detector_encoder",
    "score_records",
    "score_with_saved_detector",
    "write_outputs",
]

logger = logging.getLogger(__name__)

TRUE_WORDS = frozenset({"true"})
FALSE_WORDS = frozenset({"false"})


def is_anomaly_from_truth(records: LabelledTexts, column: str) -> list[bool]:
    """``true``/``false`` values (any case) of ``records.labels`` read from ``column``."""
    values = records.require_labels(flag="truth_column")
    out: list[bool] = []
    for record_id, value in zip(records.ids, values, strict=True):
        word = value.strip().lower()
        if word not in TRUE_WORDS | FALSE_WORDS:
            raise DataFormatError(
                records.path,
                0,
                f"record {record_id!r} has {value!r} in truth column {column!r}",
                expected="true (an anomaly) or false (a normal record) on every record",
                fix="fix the value, or pass --label-column instead for a column of classes",
            )
        out.append(word in TRUE_WORDS)
    return out


def is_anomaly_from_labels(labels: list[str], normal_labels: list[str]) -> list[bool]:
    """A record is anomalous when its label never occurs in the normal set."""
    known = set(normal_labels)
    return [label not in known for label in labels]


@dataclass(frozen=True)
class AnomalyReport:
    """New records scored: scores, flags, and (with ground truth) AUROC and rates.

    ``result`` is the command's JSON summary; ``vectors`` are the records' vectors.
    """

    ids: list[str]
    scores: NDArray[np.float64]
    flagged: NDArray[np.bool_]
    is_anomaly: list[bool] | None
    result: dict[str, Any]
    vectors: NDArray[np.float32]


def score_records(
    model: AnomalyModel,
    vectors: NDArray[np.floating],
    ids: list[str],
    *,
    is_anomaly: list[bool] | None = None,
) -> AnomalyReport:
    """Score and flag new records; AUROC and the rates reached when truth is given."""
    scores = model.score(vectors)
    flagged = model.flag(scores)
    auroc: float | None = None
    fpr: float | None = None
    detection: float | None = None
    anomalies: int | None = None
    if is_anomaly is not None:
        auroc = anomaly_auroc(scores, is_anomaly)
        rates = rates_at_threshold(scores, is_anomaly, model.threshold)
        fpr, detection, anomalies = rates.fpr, rates.detection_rate, rates.anomalies
    result: dict[str, Any] = {
        "auroc": auroc,
        "fpr_at_threshold": fpr,
        "detection_rate": detection,
        "threshold": model.threshold,
        "target_fpr": model.target_fpr,
        "flagged": int(flagged.sum()),
        "records": len(ids),
        "anomalies": anomalies,
        "detector": model.name,
        "k": model.k,
        "normal_records": len(model.normal_ids),
        "calibration": model.calibration,
        "calibration_fpr": model.metrics.get("calibration_fpr"),
    }
    logger.info(
        "anomalies: %d of %d records flagged (%s, threshold %.4f)",
        result["flagged"],
        len(ids),
        model.name,
        model.threshold,
    )
    return AnomalyReport(
        list(ids), scores, flagged, is_anomaly, result, np.asarray(vectors, dtype=np.float32)
    )


def write_outputs(
    out: Path,
    model: AnomalyModel,
    report: AnomalyReport,
    new: LabelledTexts,
    new_vectors: NDArray[np.floating],
    normal: LabelledTexts | None,
) -> None:
    """``scores.jsonl`` (every record), ``flagged.jsonl`` (with neighbours), ``detector/``.

    Texts go to ``flagged.jsonl`` only (owner-only, mode 0600): the node's own file, never
    a log line. ``normal=None`` (a saved detector, which keeps the normal records' vectors
    and ids but never their texts): the neighbours are named by id and similarity only,
    and ``detector/`` is not written again.
    """
    out.mkdir(parents=True, exist_ok=True)
    truth = report.is_anomaly
    lines: list[str] = []
    for i, record_id in enumerate(report.ids):
        row: dict[str, Any] = {
            "id": record_id,
            "score": float(report.scores[i]),
            "flagged": bool(report.flagged[i]),
        }
        if truth is not None:
            row["anomalous"] = truth[i]
        lines.append(json.dumps(row) + "\n")
    atomic_write_bytes(out / "scores.jsonl", "".join(lines).encode("utf-8"))
    normal_text = dict(zip(normal.ids, normal.texts, strict=True)) if normal is not None else {}
    where = np.flatnonzero(report.flagged)
    explained = model.explain(np.asarray(new_vectors)[where]) if len(where) else []
    order = np.argsort(-report.scores[where], kind="stable")
    lines = []
    for position in order:
        i = int(where[position])
        neighbours: list[dict[str, Any]] = []
        for nid, sim in explained[position]:
            neighbour: dict[str, Any] = {"id": nid, "similarity": sim}
            if normal is not None:
                neighbour["text"] = normal_text.get(nid)
            neighbours.append(neighbour)
        row = {
            "id": report.ids[i],
            "score": float(report.scores[i]),
            "text": new.texts[i],
            "neighbours": neighbours,
        }
        if truth is not None:
            row["anomalous"] = truth[i]
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    atomic_write_bytes(out / "flagged.jsonl", "".join(lines).encode("utf-8"))  # node-only file
    if normal is not None:
        model.save(out / "detector")
    logger.info("anomalies: wrote %s (%d flagged records)", out, len(where))


def find_anomalies(
    normal: LabelledTexts,
    new: LabelledTexts,
    encoder: RecordEncoder,
    *,
    detector: str = "knn",
    k: int = 10,
    target_fpr: float = 0.05,
    is_anomaly: list[bool] | None = None,
    seed: int = 0,
    folds: int = DEFAULT_FOLDS,
    out: Path | None = None,
) -> tuple[AnomalyModel, AnomalyReport]:
    """Encode both sets, fit on ``normal`` (its labels, if any, as classes), score ``new``.

    ``is_anomaly``: the new records' ground truth (see :func:`is_anomaly_from_truth`,
    :func:`is_anomaly_from_labels`), for the AUROC and the rates reached. ``out``: where
    :func:`write_outputs` writes.
    """
    check_target_fpr(target_fpr)
    make_detector(detector, k)
    check_sizes(detector, k, len(normal), target_fpr, folds)
    normal_vectors = encoder.encode(normal.texts, what="encode normal records")
    new_vectors = encoder.encode(new.texts, what="encode new records")
    model = fit_anomaly_model(
        normal_vectors,
        normal.ids,
        labels=normal.labels,
        detector=detector,
        k=k,
        target_fpr=target_fpr,
        folds=folds,
        seed=seed,
        encoder=encoder_identity(encoder),
    )
    report = score_records(model, new_vectors, new.ids, is_anomaly=is_anomaly)
    model.metrics.update(
        {key: report.result[key] for key in ("auroc", "fpr_at_threshold", "detection_rate")}
    )
    if out is not None:
        write_outputs(out, model, report, new, new_vectors, normal)
    return model, report


def saved_detector_encoder(
    folder: Path,
    *,
    model: Path | None = None,
    encoder_backend: str | None = None,
    adapter: Path | None = None,
    cache_dir: Path | None = None,
) -> RecordEncoder:
    """The encoder a saved detector's normal records were encoded with, unless told otherwise.

    Each of ``model``, ``encoder_backend`` and ``adapter`` left ``None`` is the one its
    manifest records; :func:`score_with_saved_detector` refuses an encoder of another space.
    """
    made: dict[str, Any] = dict(read_manifest(folder).get("encoder") or {})
    recorded_adapter = made.get("adapter")
    recorded_model = made.get("model_path")
    return RecordEncoder(
        model=model if model is not None else recorded_model,
        encoder_backend=encoder_backend
        or str(made.get("encoder_backend") or DEFAULT_ENCODER_BACKEND),
        adapter=adapter
        if adapter is not None
        else (Path(recorded_adapter) if recorded_adapter else None),
        cache_dir=cache_dir,
    )


def score_with_saved_detector(
    folder: Path,
    new: LabelledTexts,
    encoder: RecordEncoder,
    *,
    is_anomaly: list[bool] | None = None,
    out: Path | None = None,
) -> tuple[AnomalyModel, AnomalyReport]:
    """Score and flag ``new`` with the detector saved in ``folder`` and its threshold.

    The detector is loaded (its SHA-256 verified) and refused unless ``encoder`` encodes in
    the space and with the adapter its normal records were encoded with; nothing is fitted
    or calibrated again. ``out``: ``scores.jsonl`` and ``flagged.jsonl`` (neighbours by id:
    the saved detector holds no texts).
    """
    source = detector_folder(folder)
    if encoder.adapter is not None and not Path(encoder.adapter).exists():
        raise FedembedError(
            f"the adapter folder {encoder.adapter} does not exist on this node",
            expected=f"the adapter the detector at {source} was fitted with (named in its "
            "manifest.json)",
            fix="pass --adapter with that adapter's folder",
        )
    model = AnomalyModel.load(source, encoder=encoder_identity(encoder))
    vectors = encoder.encode(new.texts, what="encode new records")
    report = score_records(model, vectors, new.ids, is_anomaly=is_anomaly)
    if out is not None:
        write_outputs(out, model, report, new, vectors, None)
    return model, report
