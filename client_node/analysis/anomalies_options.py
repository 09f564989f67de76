"""The options of ``fedembed node analyse anomalies``, and which of them go together.

The command either fits a detector on ``--normal`` (``--detector``, ``--k``,
``--target-fpr``) or reuses one ``--out`` saved (``--saved-detector``): exactly one of
the two, and none of the fitting options with a saved detector (:func:`check_mode`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import click
import typer

from client_node.analysis.options import input_exists, option_given
from embedding_core.errors import FedembedError

__all__ = [
    "DETECTOR_CHOICES",
    "DetectorOpt",
    "KOpt",
    "LabelColumnOpt",
    "NormalOpt",
    "SavedDetectorOpt",
    "TargetFprOpt",
    "TruthColumnOpt",
    "check_mode",
]

DETECTOR_CHOICES = ("knn", "mahalanobis", "relative-mahalanobis")  # anomalies.DETECTORS


def _target_fpr_in_range(value: float) -> float:
    if not 0.0 < value < 1.0:
        raise typer.BadParameter(
            f"{value:g} is not a rate strictly between 0 and 1: expected e.g. 0.05 (one "
            "normal record in twenty flagged)"
        )
    return value


def _normal_exists(value: Path | None) -> Path | None:
    return None if value is None else input_exists(value)


def _folder_exists(value: Path | None) -> Path | None:
    if value is not None and not value.is_dir():
        state = "is a file" if value.exists() else "does not exist"
        raise typer.BadParameter(
            f"{value} {state}: expected the folder `fedembed node analyse anomalies --out DIR` "
            "wrote (DIR, or DIR/detector)"
        )
    return value


NormalOpt = Annotated[
    Path | None,
    typer.Option(
        "--normal",
        callback=_normal_exists,
        help="The node's normal records (what it expects to see): the detector is fitted "
        "on them. Same formats and columns as --input. Required unless --saved-detector "
        "is given.",
    ),
]
SavedDetectorOpt = Annotated[
    Path | None,
    typer.Option(
        "--saved-detector",
        callback=_folder_exists,
        help="The folder `fedembed node analyse anomalies --out DIR` wrote (DIR/detector, "
        "or DIR): score --input with that detector and its calibrated threshold instead "
        "of fitting one on --normal (not with --normal, --detector, --k, --target-fpr). "
        "Records are encoded as its normal records were (its --model, --encoder-backend "
        "and --adapter, unless given).",
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


FIT_FLAGS = {
    "normal": "--normal",
    "detector": "--detector",
    "k": "--k",
    "target_fpr": "--target-fpr",
}
"""The fitting options (parameter: flag), refused beside --saved-detector."""


def check_mode(ctx: typer.Context, normal: Path | None, saved: Path | None) -> None:
    """Exactly one of --normal (fit) and --saved-detector (reuse); no fit flag with reuse."""
    if saved is None and normal is None:
        raise FedembedError(
            "neither --normal nor --saved-detector was given",
            expected="one of them: --normal FILE (the node's normal records, to fit a "
            "detector on) or --saved-detector DIR (a detector `fedembed node analyse "
            "anomalies --out DIR` saved)",
            fix="pass --normal, or --saved-detector",
        )
    if saved is None:
        return
    mixed = [flag for name, flag in FIT_FLAGS.items() if option_given(ctx, name)]
    if mixed:
        raise FedembedError(
            f"--saved-detector was given with {', '.join(mixed)}",
            expected="--saved-detector alone (it keeps the normal records, detector, --k "
            "and threshold it was fitted with), or --normal with --detector, --k and "
            "--target-fpr to fit a new detector",
            fix=f"leave out {' and '.join(mixed)}, or leave out --saved-detector",
        )
