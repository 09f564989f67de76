"""``fedembed node analyse anomalies`` on BANKING77 records, run through the real CLI entry."""

from __future__ import annotations

import csv
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from embedding_core.adapter import Adapter
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, Encoder
from fedembed.cli import main

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


def _write_csv(path: Path, rows: list[dict[str, str]], fields: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def records(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Normal: 50 train records of 4 intents; new: the test records of those and 2 more."""
    folder = tmp_path_factory.mktemp("anomalies")
    source = shared_data_dir / "banking77"
    with (source / "train.csv").open(encoding="utf-8") as handle:
        train = list(csv.DictReader(handle))
    with (source / "test.csv").open(encoding="utf-8") as handle:
        test = list(csv.DictReader(handle))
    intents = sorted({r["category"] for r in train})[::12]  # 7 intents, spread out
    normal_intents, odd_intents = set(intents[:4]), set(intents[4:6])
    normal = [
        r
        for i in sorted(normal_intents)
        for r in [x for x in train if x["category"] == i][:PER_INTENT]
    ]
    new = [
        {**r, "odd": "True" if r["category"] in odd_intents else "false"}
        for r in test
        if r["category"] in normal_intents | odd_intents
    ]
    bad = [{**r, "odd": "maybe" if i == 3 else r["odd"]} for i, r in enumerate(new)]
    fields = ["text", "category", "odd"]
    return {
        "normal": _write_csv(folder / "normal.csv", normal, fields[:2]),
        "new": _write_csv(folder / "new.csv", new, fields),
        "bad_truth": _write_csv(folder / "bad_truth.csv", bad, fields),
        "tiny": _write_csv(folder / "tiny.csv", normal[:6], fields[:2]),
        "empty": _write_csv(folder / "empty.csv", [], fields[:2]),
    }


@pytest.fixture
def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, embedding_cache_dir: Path
) -> Any:
    """Run ``fedembed node analyse anomalies ARGS`` as ``main`` does: (exit code, out, err)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        argv = ["fedembed", "node", "analyse", "anomalies", "--cache-dir", str(embedding_cache_dir)]
        monkeypatch.setattr(sys, "argv", [*argv, *args])
        with pytest.raises(SystemExit) as exited:
            main()
        captured = capsys.readouterr()
        return int(exited.value.code or 0), captured.out, captured.err

    return invoke


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


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
    result = json.loads(out.strip().splitlines()[-1])
    assert set(result) >= JSON_KEYS
    rows = _jsonl(tmp_path / "scores.jsonl")
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
    explained = _jsonl(tmp_path / "flagged.jsonl")
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
    result = json.loads(out.strip().splitlines()[-1])
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
    result = json.loads(out.strip().splitlines()[-1])
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
    encoder = Encoder.load(None, backend=DEFAULT_ENCODER_BACKEND)
    adapter = Adapter(384, kind="low_rank", rank=8, seed=1)
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in adapter.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.2)
    adapter.save(
        tmp_path / "adapter", base_model_id=encoder.model_id,
        base_model_fingerprint=encoder.fingerprint,
    )  # fmt: skip
    common = ["--normal", str(records["normal"]), "--input", str(records["new"]), "--json"]
    # Execute
    _, plain, _ = run(*common, "--out", str(tmp_path / "plain"))
    code, adapted, err = run(*common, "--adapter", str(tmp_path / "adapter"), "--out",
                             str(tmp_path / "adapted"))  # fmt: skip
    # Assert
    assert code == 0, err
    plain_scores = [r["score"] for r in _jsonl(tmp_path / "plain" / "scores.jsonl")]
    adapted_scores = [r["score"] for r in _jsonl(tmp_path / "adapted" / "scores.jsonl")]
    assert not np.allclose(plain_scores, adapted_scores, atol=1e-3)
    manifest = json.loads((tmp_path / "adapted" / "detector" / "manifest.json").read_text())
    assert manifest["encoder"]["adapter_sha256"] is not None
    assert json.loads(adapted.strip().splitlines()[-1])["records"] == 240
    assert json.loads(plain.strip().splitlines()[-1])["records"] == 240


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
    given = [a.format(**{k: str(v) for k, v in records.items()}) for a in args]
    for flag, value in defaults.items():
        if flag not in given:
            given += [flag, value]

    code, _, err = run(*given)

    assert code == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in err
    if err.startswith("error:"):
        assert len(err.strip().splitlines()) == 1
