"""``fedembed node analyse anomalies`` on BANKING77 records, run through the real CLI entry."""

from __future__ import annotations

import functools
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from analytics import load_labelled_texts
from client_node.analysis import RecordEncoder
from client_node.analysis.anomalies import find_anomalies
from tests.client_node.analysis.records import (
    Runner,
    assert_one_clear_error,
    banking77,
    fill,
    first_of_each,
    jsonl,
    last_json,
    random_adapter,
    spread_intents,
    write_csv,
)

PER_INTENT = 50
JSON_KEYS = {
    "auroc",
    "fpr_at_threshold",
    "detection_rate",
    "threshold",
    "target_fpr",
    "flagged",
    "records",
    "detector",
}


@pytest.fixture(scope="module")
def records(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Normal: 50 train records of 4 intents; new: the test records of those and 2 more."""
    folder = tmp_path_factory.mktemp("anomalies")
    train = banking77(shared_data_dir, "train")
    test = banking77(shared_data_dir, "test")
    intents = spread_intents(train, 12)  # 7 intents, spread out
    normal_intents, odd_intents = set(intents[:4]), set(intents[4:6])
    normal = first_of_each(train, sorted(normal_intents), PER_INTENT)
    new = [
        {**r, "odd": "True" if r["category"] in odd_intents else "false"}
        for r in test
        if r["category"] in normal_intents | odd_intents
    ]
    bad = [{**r, "odd": "maybe" if i == 3 else r["odd"]} for i, r in enumerate(new)]
    fields = ["text", "category", "odd"]
    return {
        "normal": write_csv(folder / "normal.csv", normal, fields[:2]),
        "new": write_csv(folder / "new.csv", new, fields),
        "bad_truth": write_csv(folder / "bad_truth.csv", bad, fields),
        "tiny": write_csv(folder / "tiny.csv", normal[:6], fields[:2]),
        "empty": write_csv(folder / "empty.csv", [], fields[:2]),
    }


@pytest.fixture
def run(analyse: Runner) -> Runner:
    """Run ``fedembed node analyse anomalies ARGS``: (exit code, out, err)."""
    return functools.partial(analyse, "anomalies")


def test_label_column_gives_auroc_and_rates_of_the_scores_written(
    run: Any, records: dict[str, Path], tmp_path: Path
) -> None:
    # Execute
    code, out, err = run(
        "--normal", str(records["normal"]), "--input", str(records["new"]),
        "--label-column", "category", "--k", "5", "--out", str(tmp_path), "--json",
    )  # fmt: skip
    # Assert: the summary equals scikit-learn on the scores the command wrote
    assert code == 0, err
    result = last_json(out)
    assert set(result) >= JSON_KEYS
    rows = jsonl(tmp_path / "scores.jsonl")
    truth = np.array([r["anomalous"] for r in rows])
    scores = np.array([r["score"] for r in rows])
    flagged = np.array([r["flagged"] for r in rows])
    assert result["records"] == len(rows) == 240
    assert result["anomalies"] == int(truth.sum()) == 80
    assert result["auroc"] == pytest.approx(roc_auc_score(truth, scores), abs=1e-9)
    assert result["auroc"] > 0.85
    assert result["fpr_at_threshold"] == pytest.approx(flagged[~truth].mean())
    assert result["detection_rate"] == pytest.approx(flagged[truth].mean())
    assert np.array_equal(flagged, scores > result["threshold"])
    assert result["flagged"] == int(flagged.sum()) > 0
    # Flagged records are explained by their 5 nearest normal records, texts in the file only
    explained = jsonl(tmp_path / "flagged.jsonl")
    assert len(explained) == result["flagged"]
    first = explained[0]
    assert len(first["neighbours"]) == 5
    sims = [n["similarity"] for n in first["neighbours"]]
    assert sims == sorted(sims, reverse=True)
    assert first["text"] not in out + err
    manifest = json.loads((tmp_path / "detector" / "manifest.json").read_text())
    weights = (tmp_path / "detector" / "detector.npz").read_bytes()
    assert manifest["weights_sha256"] == hashlib.sha256(weights).hexdigest()
    assert manifest["encoder"]["adapter"] is None


def test_truth_column_and_mahalanobis_detector(run: Any, records: dict[str, Path]) -> None:
    code, out, err = run(
        "--normal", str(records["normal"]), "--input", str(records["new"]),
        "--truth-column", "odd", "--detector", "mahalanobis", "--target-fpr", "0.1", "--json",
    )  # fmt: skip

    assert code == 0, err
    result = last_json(out)
    assert result["detector"] == "mahalanobis"
    assert result["target_fpr"] == 0.1
    assert result["anomalies"] == 80
    assert result["auroc"] > 0.85
    assert "AUROC" in out


def test_without_ground_truth_auroc_and_rates_are_null(run: Any, records: dict[str, Path]) -> None:
    code, out, err = run(
        "--normal", str(records["normal"]), "--input", str(records["new"]), "--json"
    )

    assert code == 0, err
    result = last_json(out)
    assert (result["auroc"], result["fpr_at_threshold"], result["detection_rate"]) == (
        None,
        None,
        None,
    )
    assert 0 < result["flagged"] < result["records"]


def test_adapter_changes_the_space_the_detector_works_in(
    run: Any, records: dict[str, Path], tmp_path: Path
) -> None:
    # Prepare: a non-trivial adapter on the bundled encoder
    random_adapter(tmp_path / "adapter", seed=1, scale=0.2)
    common = ["--normal", str(records["normal"]), "--input", str(records["new"]), "--json"]
    # Execute
    _, plain, _ = run(*common, "--out", str(tmp_path / "plain"))
    code, adapted, err = run(*common, "--adapter", str(tmp_path / "adapter"), "--out",
                             str(tmp_path / "adapted"))  # fmt: skip
    # Assert
    assert code == 0, err
    plain_scores = [r["score"] for r in jsonl(tmp_path / "plain" / "scores.jsonl")]
    adapted_scores = [r["score"] for r in jsonl(tmp_path / "adapted" / "scores.jsonl")]
    assert not np.allclose(plain_scores, adapted_scores, atol=1e-3)
    manifest = json.loads((tmp_path / "adapted" / "detector" / "manifest.json").read_text())
    assert manifest["encoder"]["adapter_sha256"] is not None
    assert last_json(adapted)["records"] == 240
    assert last_json(plain)["records"] == 240


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--normal", "{empty}"], "holds no documents"),
        (["--input", "{empty}"], "holds no documents"),
        (["--target-fpr", "0"], "'--target-fpr': 0 is not a rate strictly between 0 and 1"),
        (["--target-fpr", "1.5"], "'--target-fpr': 1.5 is not a rate strictly between 0 and 1"),
        (["--normal", "{tiny}", "--k", "10"], "--k 10 is larger than the normal set (6 records)"),
        (["--normal", "{tiny}", "--k", "3"], "too few to calibrate --target-fpr 0.05"),
        (["--truth-column", "odd", "--input", "{bad_truth}"], "has 'maybe' in truth column 'odd'"),
        (["--truth-column", "missing"], "true or false in column 'missing' of --input"),
        (["--label-column", "missing"], "no 'missing' column"),
        (["--label-column", "category", "--truth-column", "odd"], "not both"),
        (["--detector", "relative-mahalanobis"], "pass --label-column, or --detector mahalanobis"),
    ],
)
def test_bad_input_is_one_clear_error_in_cli_words(
    run: Any, records: dict[str, Path], args: list[str], message: str
) -> None:
    defaults = {"--normal": str(records["normal"]), "--input": str(records["new"])}
    given = fill(args, records)
    for flag, value in defaults.items():
        if flag not in given:
            given += [flag, value]

    code, _, err = run(*given)

    assert_one_clear_error(code, err, message)


@pytest.mark.parametrize(("detector", "saved_as"), [("knn", "detector"), ("mahalanobis", "")])
def test_a_saved_detector_scores_new_records_exactly_as_when_it_was_fitted(
    run: Any, records: dict[str, Path], tmp_path: Path, detector: str, saved_as: str
) -> None:
    # Prepare: fit and save through the CLI
    truth = ["--input", str(records["new"]), "--label-column", "category", "--json"]
    code, fit_out, err = run(
        "--normal", str(records["normal"]), *truth, "--detector", detector, "--k", "5",
        "--target-fpr", "0.1", "--out", str(tmp_path / "fit"),
    )  # fmt: skip
    assert code == 0, err
    saved = tmp_path / "fit" / saved_as  # the detector/ folder, or the --out folder
    # Execute: reuse it on the same records, without --normal
    code, out, err = run("--saved-detector", str(saved), *truth, "--out", str(tmp_path / "again"))
    # Assert: the same scores, flags, threshold and rates, to the last bit
    assert code == 0, err
    fitted, reused = last_json(fit_out), last_json(out)
    assert reused["saved_detector"] == str(saved)
    skip = {"out", "saved_detector"}
    assert {k: v for k, v in reused.items() if k not in skip} == {
        k: v for k, v in fitted.items() if k not in skip
    }
    assert (reused["detector"], reused["k"], reused["target_fpr"]) == (detector, 5, 0.1)
    assert jsonl(tmp_path / "again" / "scores.jsonl") == jsonl(tmp_path / "fit" / "scores.jsonl")
    assert 0 < reused["flagged"] < reused["records"]
    # Explanations name the same normal records by id; the saved detector holds no texts
    first_fit = jsonl(tmp_path / "fit" / "flagged.jsonl")
    first_again = jsonl(tmp_path / "again" / "flagged.jsonl")
    assert [r["id"] for r in first_again] == [r["id"] for r in first_fit]
    assert [[n["id"] for n in r["neighbours"]] for r in first_again] == [
        [n["id"] for n in r["neighbours"]] for r in first_fit
    ]
    assert all(set(n) == {"id", "similarity"} for r in first_again for n in r["neighbours"])
    normal_texts = load_labelled_texts(records["normal"]).texts
    detector_files = b"".join(p.read_bytes() for p in (tmp_path / "fit" / "detector").iterdir())
    assert not any(text.encode() in detector_files for text in normal_texts)
    assert not (tmp_path / "again" / "detector").exists()
    assert (tmp_path / "again" / "flagged.jsonl").stat().st_mode & 0o777 == 0o600
    assert "nearest normal" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--normal", "{normal}"], "--saved-detector was given with --normal"),
        (["--k", "10"], "--saved-detector was given with --k"),
        (["--detector", "knn", "--target-fpr", "0.05"], "given with --detector, --target-fpr"),
        (["--normal", "{normal}", "--k", "5"], "leave out --normal and --k"),
    ],
)
def test_a_saved_detector_with_fitting_flags_is_refused_naming_them(
    run: Any, records: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    code, _, err = run("--saved-detector", str(tmp_path), "--input", str(records["new"]),
                       *fill(args, records))  # fmt: skip

    assert_one_clear_error(code, err, message)


def test_neither_normal_records_nor_a_saved_detector_is_refused(
    run: Any, records: dict[str, Path]
) -> None:
    code, _, err = run("--input", str(records["new"]))

    assert_one_clear_error(code, err, "neither --normal nor --saved-detector was given")
    assert "pass --normal, or --saved-detector" in err


@pytest.fixture(scope="module")
def saved(
    records: dict[str, Path], embedding_cache_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A k-NN detector fitted on the unlabelled normal records and saved, as --out does."""
    out = tmp_path_factory.mktemp("saved-detector")
    normal, new = load_labelled_texts(records["normal"]), load_labelled_texts(records["new"])
    find_anomalies(normal, new, RecordEncoder(cache_dir=embedding_cache_dir), k=5, out=out)
    return out / "detector"


def _tamper_weights(folder: Path) -> None:
    data = bytearray((folder / "detector.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "detector.npz").write_bytes(bytes(data))


def _edit_manifest(folder: Path, **encoder: str) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["encoder"].update(encoder)
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        ("weights", [], "does not match the SHA-256 in its manifest"),
        ("space", [], "fitted on vectors of another encoder"),
        ("", ["--adapter", "{adapter}"], "fitted on vectors of another adapter"),
        ("adapter", [], "does not exist on this node"),
        ("", ["--label-column", "category"], "was fitted without classes"),
        ("manifest", [], "no readable detector manifest"),
    ],
)
def test_a_tampered_or_foreign_saved_detector_is_refused(
    run: Any,
    records: dict[str, Path],
    saved: Path,
    tmp_path: Path,
    change: str,
    args: list[str],
    message: str,
) -> None:
    # Prepare: a copy of the saved detector, changed
    folder = Path(shutil.copytree(saved, tmp_path / "detector"))
    if change == "weights":
        _tamper_weights(folder)
    elif change == "space":
        _edit_manifest(folder, encoder_space="another-model-space")
    elif change == "adapter":
        _edit_manifest(folder, adapter=str(tmp_path / "gone"))
    elif change == "manifest":
        (folder / "manifest.json").unlink()
    adapter = tmp_path / "adapter"
    if "{adapter}" in args:
        random_adapter(adapter, seed=4, scale=0.1)
    # Execute
    code, _, err = run("--saved-detector", str(folder), "--input", str(records["new"]),
                         "--out", str(tmp_path / "out"),
                         *fill(args, {**records, "adapter": adapter}))  # fmt: skip
    # Assert
    assert_one_clear_error(code, err, message)
    assert "--" in err.split("Fix:")[-1]  # the fix names a flag to type
    assert not (tmp_path / "out").exists()
