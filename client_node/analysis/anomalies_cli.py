"""``fedembed node analyse anomalies``: flag the new records unlike the node's normal ones.

    fedembed node analyse anomalies --normal normal.csv --input new.csv \
        [--detector knn|mahalanobis|relative-mahalanobis] [--k 10] [--target-fpr 0.05] \
        [--truth-column COL | --label-column COL] [--out DIR] [--json]

The detector is fitted on ``--normal``; the threshold is calibrated on normal records
each calibration detector did not fit (5-fold cross-fitting), so about ``--target-fpr``
of fresh normal records get flagged. With ``--truth-column`` (true/false) or
``--label-column`` (a label the normal set lacks counts as anomalous) the AUROC and the
rates reached are printed. ``--out`` writes ``scores.jsonl``, ``flagged.jsonl`` (each
flagged record with its nearest normal records: ids, similarities, texts) and
``detector/``. Nothing leaves the node; texts are never logged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import click
import typer

from client_node.analysis.options import (
    IdColumnOpt,
    InputOpt,
    OutOpt,
    SeedOpt,
    TextColumnOpt,
    emit,
    input_exists,
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

DETECTOR_CHOICES = ("knn", "mahalanobis", "relative-mahalanobis")  # anomalies.DETECTORS
TOP_SHOWN = 5
CLI_WORDS = {
    "target_fpr=": "--target-fpr ",
    "a larger target_fpr": "a larger --target-fpr",
    "k=": "--k ",
    "k <= ": "--k <= ",
    "a smaller k": "a smaller --k",
}


def _target_fpr_in_range(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise typer.BadParameter(
            f"{value:g} is not a rate strictly between 0 and 1: expected e.g. 0.05 (one "
            "normal record in twenty flagged)"
        )
    return value


NormalOpt = Annotated[
    Path,
    typer.Option(
        "--normal",
        callback=input_exists,
        help="The node's normal records (what it expects to see): the detector is fitted "
        "on them. Same formats and columns as --input.",
    ),
]
DetectorOpt = Annotated[
    str,
    typer.Option(
        "--detector",
        click_type=click.Choice(DETECTOR_CHOICES),
        help="knn: mean cosine distance to the --k nearest normal records (Sun et al. "
        "2022); mahalanobis: distance to the nearest class mean, Ledoit-Wolf shrunk "
        "covariance (Lee et al. 2018; one mean per --label-column class when given); "
        "relative-mahalanobis: that minus the distance to the whole normal set (Ren et al. "
        "2021; needs --label-column).",
        show_default=True,
    ),
]
KOpt = Annotated[
    int,
    typer.Option(
        "--k",
        min=1,
        help="Nearest normal records per record: the knn score, and each flagged "
        "record's explanation.",
        show_default=True,
    ),
]
TargetFprOpt = Annotated[
    float,
    typer.Option(
        "--target-fpr",
        callback=_target_fpr_in_range,
        help="Share of normal records the threshold may flag, in (0, 1).",
        show_default=True,
    ),
]
LabelColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--label-column",
        help="The column holding each record's class, in --normal and --input: an --input "
        "record of a class the --normal records lack counts as anomalous (prints the "
        "AUROC and the rates reached); the mahalanobis detectors keep one mean per class.",
    ),
]
TruthColumnOpt = Annotated[
    str | None,
    typer.Option(
        "--truth-column",
        help="A column of --input saying true (anomaly) or false (normal) for each "
        "record: prints the AUROC and the rates reached.",
    ),
]


def _load(
    normal_path: Path,
    input_path: Path,
    *,
    text_column: str,
    id_column: str | None,
    label_column: str | None,
    truth_column: str | None,
    detector: str,
) -> tuple[Any, Any, list[bool] | None]:
    from analytics import load_labelled_texts
    from client_node.analysis.anomalies import is_anomaly_from_labels, is_anomaly_from_truth

    if detector == "relative-mahalanobis" and label_column is None:
        raise FedembedError(
            "--detector relative-mahalanobis needs the classes of the --normal records",
            expected="--label-column naming the column holding each record's class",
            fix="pass --label-column, or --detector mahalanobis",
        )
    if label_column is not None and truth_column is not None:
        raise FedembedError(
            "both --truth-column and --label-column were given",
            expected="one source of ground truth",
            fix="pass --truth-column (true/false) or --label-column (a label the --normal "
            "records lack counts as anomalous), not both",
        )
    normal = load_labelled_texts(
        normal_path, text_column=text_column, label_column=label_column, id_column=id_column
    )
    try:
        new = load_labelled_texts(
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
    is_anomaly: list[bool] | None = None
    if truth_column is not None:
        is_anomaly = is_anomaly_from_truth(new, truth_column)
    elif label_column is not None and new.labels is not None and normal.labels is not None:
        is_anomaly = is_anomaly_from_labels(new.labels, normal.labels)
    return normal, new, is_anomaly


def _lines(result: dict[str, Any], top: list[tuple[str, float, str, float]]) -> list[str]:
    lines = [
        f"anomalies: {result['flagged']} of {result['records']} records flagged "
        f"({result['detector']}, k={result['k']}, threshold {result['threshold']:.4f} at "
        f"target FPR {result['target_fpr']:g})",
        f"normal set: {result['normal_records']} records; threshold calibrated by "
        f"{result['calibration']}",
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
    if result["out"] is not None:
        lines.append(f"wrote {result['out']}: scores.jsonl, flagged.jsonl, detector/")
    return lines


def anomalies_cmd(
    normal: NormalOpt,
    input_path: InputOpt,
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
    """Score new records by their distance to the normal ones; flag the unusual."""
    import numpy as np

    from client_node.analysis.anomalies import find_anomalies

    normal_records, new, is_anomaly = _load(
        normal,
        input_path,
        text_column=text_column,
        id_column=id_column,
        label_column=label_column,
        truth_column=truth_column,
        detector=detector,
    )
    encoder = record_encoder(model, encoder_backend, adapter, cache_dir)
    try:
        fitted, report = find_anomalies(
            normal_records,
            new,
            encoder,
            detector=detector,
            k=k,
            target_fpr=target_fpr,
            is_anomaly=is_anomaly,
            seed=seed,
            out=out,
        )
    except FedembedError as exc:
        if isinstance(exc, DataFormatError):
            raise
        raise in_cli_words(exc, CLI_WORDS) from exc
    result = {**report.result, "out": str(out) if out is not None else None}
    order = np.argsort(-report.scores, kind="stable")
    shown = [int(i) for i in order[:TOP_SHOWN] if report.flagged[i]]
    explained = fitted.explain(report.vectors[shown], 1) if shown else []
    top = [
        (report.ids[i], float(report.scores[i]), why[0][0], why[0][1])
        for i, why in zip(shown, explained, strict=True)
    ]
    emit(_lines(result, top), result, as_json=as_json)
