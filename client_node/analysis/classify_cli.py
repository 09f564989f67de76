"""``fedembed node analyse classify`` and ``predict``: a classifier of the node's records.

``classify`` cross-validates a linear head on the labelled records (accuracy, macro-F1),
fits it on all of them and saves it (``--out``); ``predict`` labels new records with a
saved classifier, in the encoder space it was trained in. Heavy imports happen inside
the commands so ``fedembed --help`` stays fast.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import click
import typer

from client_node.analysis.options import (
    IdColumnOpt,
    InputOpt,
    LabelColumnOpt,
    OutOpt,
    SeedOpt,
    TextColumnOpt,
    emit,
    record_encoder,
)
from embedding_core.cli import AdapterOpt, CacheOpt, EncoderBackendOpt, JsonOpt, ModelOpt
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, ENCODER_BACKENDS

__all__ = ["classify_cmd", "predict_cmd"]

_DEFAULT_C = 30.0  # analytics.linear_classifier.DEFAULT_C, kept import-free for --help

FoldsOpt = Annotated[
    int,
    typer.Option(
        "--folds",
        min=2,
        help="Stratified cross-validation folds (every class needs at least this many records).",
    ),
]


def _positive(value: float) -> float:
    if not value > 0:
        raise typer.BadParameter(
            f"{value} is not positive: expected a number > 0, e.g. --c {_DEFAULT_C:g} "
            "(larger: weaker regularisation)"
        )
    return value


COpt = Annotated[
    float,
    typer.Option(
        "--c",
        callback=_positive,
        help="Inverse L2 strength of the logistic regression (scikit-learn's C; larger: "
        "weaker regularisation).",
    ),
]
TuneCOpt = Annotated[
    bool,
    typer.Option(
        "--tune-c",
        help="Pick --c from 1, 3, 10, 30, 100 by inner cross-validation (nested; several "
        "times slower).",
    ),
]
ClassifierOpt = Annotated[
    Path,
    typer.Option(
        "--classifier",
        help="The folder `fedembed node analyse classify --out` wrote, or the "
        "consortium's classifier_head.json (published by a task='classifier' run: "
        "records are encoded with the head's encoder backend, no adapter).",
    ),
]
PredictOutOpt = Annotated[
    Path,
    typer.Option("--out", help="JSON-lines file of the predictions (one per record)."),
]
PredictBackendOpt = Annotated[
    str | None,
    typer.Option(
        "--encoder-backend",
        click_type=click.Choice(ENCODER_BACKENDS),
        help="How texts are encoded (default: the backend the classifier was trained with).",
    ),
]


def classify_cmd(
    input_path: InputOpt,
    label_column: LabelColumnOpt = None,
    text_column: TextColumnOpt = "text",
    id_column: IdColumnOpt = None,
    folds: FoldsOpt = 5,
    c: COpt = _DEFAULT_C,
    tune_c: TuneCOpt = False,
    out: OutOpt = None,
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    encoder_backend: EncoderBackendOpt = DEFAULT_ENCODER_BACKEND,
    cache_dir: CacheOpt = None,
    seed: SeedOpt = 0,
    as_json: JsonOpt = False,
) -> None:
    """Cross-validate and save a classifier of the records' labels (logistic regression)."""
    from analytics.labelled_texts import load_labelled_texts
    from client_node.analysis.classify import train_classifier
    from embedding_core.errors import DataFormatError

    if label_column is None:
        raise DataFormatError(
            input_path,
            0,
            "no label column was named",
            expected="a column holding each record's class",
            fix="pass --label-column naming it (e.g. --label-column category)",
        )
    records = load_labelled_texts(
        input_path, text_column=text_column, label_column=label_column, id_column=id_column
    )
    target = out if out is not None else Path(f"classifier-{input_path.stem}")
    encoder = record_encoder(model, encoder_backend, adapter, cache_dir)
    report = train_classifier(
        records, encoder, out=target, folds=folds, seed=seed, c=c, tune_c=tune_c
    )
    result = report.as_dict()
    lines = [
        f"{report.records} records, {len(report.class_counts)} classes, {folds}-fold "
        f"cross-validation (C={report.c:g}"
        + (", chosen by inner cross-validation" if tune_c else "")
        + ")",
        f"accuracy {report.accuracy:.4f} (+/- {result['accuracy_std']:.4f}), "
        f"macro-F1 {report.macro_f1:.4f} (+/- {result['macro_f1_std']:.4f})",
        f"classifier saved to {target} (use it: fedembed node analyse predict "
        f"--classifier {target} --input FILE)",
    ]
    emit(lines, result, as_json=as_json)


def predict_cmd(
    classifier: ClassifierOpt,
    input_path: InputOpt,
    text_column: TextColumnOpt = "text",
    id_column: IdColumnOpt = None,
    label_column: Annotated[
        str | None,
        typer.Option(
            "--label-column",
            help="A column of known classes: also report accuracy and macro-F1 on them.",
        ),
    ] = None,
    out: PredictOutOpt = Path("predictions.jsonl"),
    model: ModelOpt = None,
    adapter: AdapterOpt = None,
    encoder_backend: PredictBackendOpt = None,
    cache_dir: CacheOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Label new records with a saved classifier (one JSON line per record in --out)."""
    from analytics.labelled_texts import load_labelled_texts
    from client_node.analysis.classify import classifier_encoder, predict
    from client_node.analysis.consortium_head import (
        head_predictions,
        head_summary,
        is_consortium_head,
    )
    from embedding_core.atomic_file import atomic_write_bytes

    head = is_consortium_head(classifier)
    records = load_labelled_texts(
        input_path, text_column=text_column, label_column=label_column, id_column=id_column
    )
    if head:
        predictions = head_predictions(
            classifier,
            records.texts,
            model=model,
            encoder_backend=encoder_backend,
            adapter=adapter,
            cache_dir=cache_dir,
        )
    else:
        encoder = classifier_encoder(
            classifier,
            model=model,
            encoder_backend=encoder_backend,
            adapter=adapter,
            cache_dir=cache_dir,
        )
        predictions = predict(classifier, records.texts, encoder)
    rows = [
        json.dumps(
            {
                "id": record_id,
                "label": label,
                "probability": round(float(predictions.confidence[i]), 6),
                "top": [[name, round(p, 6)] for name, p in predictions.top(i)],
            }
        )
        for i, (record_id, label) in enumerate(zip(records.ids, predictions.labels, strict=True))
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, ("\n".join(rows) + "\n").encode(), mode=0o644)
    result: dict[str, Any] = {
        "records": len(records),
        "classes": len(predictions.classes),
        "out": str(out),
        "mean_probability": float(predictions.confidence.mean()) if len(records) else 0.0,
        "classifier": "consortium head" if head else "node classifier",
        **(head_summary(classifier) if head else {}),
    }
    lines = [
        f"{len(records)} records labelled with {len(predictions.classes)} classes "
        f"(mean probability {result['mean_probability']:.3f}); predictions in {out}"
    ]
    if records.labels is not None:
        from sklearn.metrics import accuracy_score, f1_score

        result["accuracy"] = float(accuracy_score(records.labels, predictions.labels))
        result["macro_f1"] = float(
            f1_score(records.labels, predictions.labels, average="macro", zero_division=0)
        )
        lines.append(
            f"against --label-column {label_column}: accuracy {result['accuracy']:.4f}, "
            f"macro-F1 {result['macro_f1']:.4f}"
        )
    emit(lines, result, as_json=as_json)
