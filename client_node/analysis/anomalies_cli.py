"""``fedembed node analyse anomalies``: flag the new records unlike the node's normal ones.

    fedembed node analyse anomalies --normal normal.csv --input new.csv \
        [--detector knn|mahalanobis|relative-mahalanobis] [--k 10] [--target-fpr 0.05] \
        [--truth-column COL | --label-column COL] [--out DIR] [--json]
    fedembed node analyse anomalies --saved-detector DIR/detector --input new.csv \
        [--truth-column COL | --label-column COL] [--out DIR2] [--json]

The detector is fitted on ``--normal``; the threshold is calibrated on normal records
each calibration detector did not fit (5-fold cross-fitting), so about ``--target-fpr``
of fresh normal records get flagged. With ``--truth-column`` (true/false) or
``--label-column`` (a label the normal set lacks counts as anomalous) the AUROC and the
rates reached are printed. ``--out`` writes ``scores.jsonl``, ``flagged.jsonl`` (each
flagged record with its nearest normal records: ids, similarities, texts) and
``detector/``. ``--saved-detector`` scores ``--input`` with such a saved detector and its
threshold instead (nothing fitted again; the records encoded as its normal records were;
neighbours named by id, since the detector keeps no texts). Nothing leaves the node;
texts are never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from client_node.analysis.anomalies_options import (
    DetectorOpt,
    KOpt,
    LabelColumnOpt,
    NormalOpt,
    SavedDetectorOpt,
    TargetFprOpt,
    TruthColumnOpt,
    check_mode,
)
from client_node.analysis.options import (
    IdColumnOpt,
    InputOpt,
    OutOpt,
    SeedOpt,
    TextColumnOpt,
    emit,
    option_given,
    record_encoder,
)
from embedding_core.cli import (
    AdapterOpt,
    CacheOpt,
    EncoderBackendOpt,
    JsonOpt,
    ModelOpt,
    in_cli_words,
)
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND
from embedding_core.errors import DataFormatError, FedembedError

__all__ = ["anomalies_cmd"]

TOP_SHOWN = 5
CLI_WORDS = {
    "target_fpr=": "--target-fpr ",
    "a larger target_fpr": "a larger --target-fpr",
    "k=": "--k ",
    "k <= ": "--k <= ",
    "a smaller k": "a smaller --k",
    "pass the detector/ folder": "pass --saved-detector with the detector/ folder",
    "fit the detector again": "fit the detector again with --normal",
}


def _load_input(
    input_path: Path,
    *,
    text_column: str,
    id_column: str | None,
    label_column: str | None,
    truth_column: str | None,
) -> Any:
    from analytics import load_labelled_texts

    if label_column is not None and truth_column is not None:
        raise FedembedError(
            "both --truth-column and --label-column were given",
            expected="one source of ground truth",
            fix="pass --truth-column (true/false) or --label-column (a label the --normal "
            "records lack counts as anomalous), not both",
        )
    try:
        return load_labelled_texts(
            input_path,
            text_column=text_column,
            label_column=label_column or truth_column,
            id_column=id_column,
        )
    except DataFormatError as exc:
        if truth_column is None:
            raise
        raise FedembedError(
            exc.problem,
            expected=f"true or false in column {truth_column!r} of --input on every record",
            fix="pass --truth-column naming the column that says whether each record is "
            "an anomaly, or leave it out",
        ) from exc


def _truth(
    new: Any, normal_labels: list[str] | None, truth_column: str | None
) -> list[bool] | None:
    from client_node.analysis.anomalies import is_anomaly_from_labels, is_anomaly_from_truth

    if truth_column is not None:
        return is_anomaly_from_truth(new, truth_column)
    if new.labels is not None and normal_labels is not None:
        return is_anomaly_from_labels(new.labels, normal_labels)
    return None


def _fit(
    normal_path: Path,
    new: Any,
    *,
    text_column: str,
    id_column: str | None,
    label_column: str | None,
    truth_column: str | None,
    detector: str,
    k: int,
    target_fpr: float,
    encoder: Any,
    seed: int,
    out: Path | None,
) -> tuple[Any, Any]:
    """Fit on --normal, calibrate, score --input (the path without --saved-detector)."""
    from analytics import load_labelled_texts
    from client_node.analysis.anomalies import find_anomalies

    if detector == "relative-mahalanobis" and label_column is None:
        raise FedembedError(
            "--detector relative-mahalanobis needs the classes of the --normal records",
            expected="--label-column naming the column holding each record's class",
            fix="pass --label-column, or --detector mahalanobis",
        )
    normal = load_labelled_texts(
        normal_path, text_column=text_column, label_column=label_column, id_column=id_column
    )
    return find_anomalies(
        normal,
        new,
        encoder,
        detector=detector,
        k=k,
        target_fpr=target_fpr,
        is_anomaly=_truth(new, normal.labels, truth_column),
        seed=seed,
        out=out,
    )


def _saved_labels(folder: Path, label_column: str | None) -> list[str] | None:
    """The classes the saved detector's normal records held (for --label-column)."""
    from client_node.analysis.anomaly_model import read_manifest

    labels = [str(label) for label in read_manifest(folder).get("normal_labels") or []]
    if label_column is not None and not labels:
        raise FedembedError(
            f"--label-column {label_column} was given, but the detector at {folder} was "
            "fitted without classes: it cannot tell which labels are new",
            expected="a detector fitted with --label-column, for --label-column",
            fix="pass --truth-column (a true/false column of --input) instead, or fit a new "
            "detector from --normal with --label-column",
        )
    return labels if label_column is not None else None


def _lines(
    result: dict[str, Any], top: list[tuple[str, float, str, float]], saved: bool
) -> list[str]:
    source = f"saved detector {result['saved_detector']}" if saved else "fitted on --normal"
    lines = [
        f"anomalies: {result['flagged']} of {result['records']} records flagged "
        f"({result['detector']}, k={result['k']}, threshold {result['threshold']:.4f} at "
        f"target FPR {result['target_fpr']:g})",
        f"normal set: {result['normal_records']} records ({source}); threshold calibrated "
        f"by {result['calibration']}",
    ]
    if result["auroc"] is not None or result["fpr_at_threshold"] is not None:
        rates = [
            f"AUROC {result['auroc']:.4f}" if result["auroc"] is not None else "AUROC n/a",
            f"FPR {result['fpr_at_threshold']:.4f}"
            if result["fpr_at_threshold"] is not None
            else "FPR n/a (no normal record)",
            f"detection rate {result['detection_rate']:.4f}"
            if result["detection_rate"] is not None
            else "detection rate n/a (no anomaly)",
        ]
        lines.append(f"{', '.join(rates)} ({result['anomalies']} anomalies in --input)")
    for record_id, score, neighbour, similarity in top:
        lines.append(
            f"  {record_id}: score {score:.4f}, nearest normal {neighbour} "
            f"(similarity {similarity:.3f})"
        )
    out = result["out"]
    if out is not None and saved:
        lines.append(f"wrote {out}: scores.jsonl, flagged.jsonl")
    elif out is not None:
        lines.append(f"wrote {out}: scores.jsonl, flagged.jsonl, detector/")
        lines.append(
            f"detector saved to {Path(out) / 'detector'} (use it: fedembed node analyse "
            f"anomalies --saved-detector {Path(out) / 'detector'} --input FILE)"
        )
    return lines


def anomalies_cmd(
    ctx: typer.Context,
    input_path: InputOpt,
    normal: NormalOpt = None,
    saved_detector: SavedDetectorOpt = None,
    detector: DetectorOpt = "knn",
    k: KOpt = 10,
    target_fpr: TargetFprOpt = 0.05,
    truth_column: TruthColumnOpt = None,
    label_column: LabelColumnOpt = None,
    text_column: TextColumnOpt = "text",
    id_column: IdColumnOpt = None,
    out: OutOpt = None,
    adapter: AdapterOpt = None,
    model: ModelOpt = None,
    encoder_backend: EncoderBackendOpt = DEFAULT_ENCODER_BACKEND,
    cache_dir: CacheOpt = None,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Score new records by their distance to the normal ones; flag the unusual.

    Fits a detector on --normal, or reuses one saved by --out (--saved-detector).
    """
    import numpy as np

    from client_node.analysis.anomalies import saved_detector_encoder, score_with_saved_detector

    check_mode(ctx, normal, saved_detector)
    new = _load_input(
        input_path,
        text_column=text_column,
        id_column=id_column,
        label_column=label_column,
        truth_column=truth_column,
    )
    try:
        if normal is not None:
            fitted, report = _fit(
                normal,
                new,
                text_column=text_column,
                id_column=id_column,
                label_column=label_column,
                truth_column=truth_column,
                detector=detector,
                k=k,
                target_fpr=target_fpr,
                encoder=record_encoder(model, encoder_backend, adapter, cache_dir),
                seed=seed,
                out=out,
            )
        elif saved_detector is not None:
            encoder = saved_detector_encoder(
                saved_detector,
                model=model,
                encoder_backend=encoder_backend if option_given(ctx, "encoder_backend") else None,
                adapter=adapter,
                cache_dir=cache_dir,
            )
            is_anomaly = _truth(new, _saved_labels(saved_detector, label_column), truth_column)
            fitted, report = score_with_saved_detector(
                saved_detector, new, encoder, is_anomaly=is_anomaly, out=out
            )
    except FedembedError as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise in_cli_words(exc, CLI_WORDS) from exc
    result = {
        **report.result,
        "saved_detector": str(saved_detector) if saved_detector is not None else None,
        "out": str(out) if out is not None else None,
    }
    order = np.argsort(-report.scores, kind="stable")
    shown = [int(i) for i in order[:TOP_SHOWN] if report.flagged[i]]
    explained = fitted.explain(report.vectors[shown], 1) if shown else []
    top = [
        (report.ids[i], float(report.scores[i]), why[0][0], why[0][1])
        for i, why in zip(shown, explained, strict=True)
    ]
    emit(_lines(result, top, saved_detector is not None), result, as_json=as_json)
