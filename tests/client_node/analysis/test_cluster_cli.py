"""``fedembed node analyse cluster`` on BANKING77 records, run through the real CLI entry."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from analytics import kmeans, load_labelled_texts
from client_node.analysis import RecordEncoder
from client_node.analysis.cluster import cluster_records
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

PER_INTENT = 30
INTENTS = 8
JSON_KEYS = {"k", "silhouette", "nmi", "ari", "method", "records", "noise"}


@pytest.fixture(scope="module")
def records(shared_data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """30 train records of each of 8 intents spread over the 77, with an id column."""
    folder = tmp_path_factory.mktemp("cluster")
    train = banking77(shared_data_dir, "train")
    intents = spread_intents(train, 77 // INTENTS, INTENTS)
    chosen = [
        {**r, "rid": f"{intent}-{n}"}
        for intent in intents
        for n, r in enumerate(first_of_each(train, [intent], PER_INTENT))
    ]
    fields = ["rid", "text", "category"]
    return {
        "records": write_csv(folder / "records.csv", chosen, fields),
        "tiny": write_csv(folder / "tiny.csv", chosen[:3], fields),
        "empty": write_csv(folder / "empty.csv", [], fields),
    }


@pytest.fixture
def run(analyse: Runner) -> Runner:
    """Run ``fedembed node analyse cluster ARGS``: (exit code, out, err)."""
    return functools.partial(analyse, "cluster")


def test_kmeans_with_labels_writes_clusters_assignments_and_map(
    run: Any, records: dict[str, Path], tmp_path: Path
) -> None:
    # Execute
    code, out, err = run(
        "--input", str(records["records"]), "--k", str(INTENTS), "--label-column", "category",
        "--id-column", "rid", "--out", str(tmp_path), "--json",
    )  # fmt: skip

    # Assert: the JSON line, and its NMI/ARI are those of the assignments written
    assert code == 0, err
    result = last_json(out)
    assert result.keys() >= JSON_KEYS
    assert (result["k"], result["method"], result["records"], result["noise"]) == (
        INTENTS, "kmeans", INTENTS * PER_INTENT, 0,
    )  # fmt: skip
    assignments = jsonl(tmp_path / "assignments.jsonl")
    labelled = load_labelled_texts(records["records"], label_column="category", id_column="rid")
    assert [a["id"] for a in assignments] == labelled.ids
    found = [a["cluster"] for a in assignments]
    truth = labelled.require_labels()
    assert result["nmi"] == pytest.approx(normalized_mutual_info_score(truth, found))
    assert result["ari"] == pytest.approx(adjusted_rand_score(truth, found))
    assert result["nmi"] > 0.5  # 8 distinct intents: far above chance (~0.05)
    assert -1.0 < result["silhouette"] < 1.0
    document = json.loads((tmp_path / "clusters.json").read_text(encoding="utf-8"))
    assert sum(c["size"] for c in document["clusters"]) == INTENTS * PER_INTENT
    assert all(c["top_terms"] and c["representatives"] for c in document["clusters"])
    assert document["encoder"]["adapter"] is None
    assert (tmp_path / "map.png").read_bytes()[:4] == b"\x89PNG"
    assert "cluster 0:" in out


def test_k_chosen_by_silhouette_without_labels(run: Any, records: dict[str, Path]) -> None:
    code, out, err = run("--input", str(records["records"]), "--k-range", "2:10", "--json")

    assert code == 0, err
    result = last_json(out)
    assert result["k_chosen_by"] == "silhouette"
    assert sorted(int(k) for k in result["k_scores"]) == list(range(2, 11))
    assert result["k_scores"][str(result["k"])] == max(result["k_scores"].values())
    assert (result["nmi"], result["ari"]) == (None, None)


def test_density_method_reports_noise(run: Any, records: dict[str, Path], tmp_path: Path) -> None:
    code, out, err = run(
        "--input", str(records["records"]), "--method", "density", "--min-cluster-size", "10",
        "--label-column", "category", "--out", str(tmp_path), "--json",
    )  # fmt: skip

    assert code == 0, err
    result = last_json(out)
    assignments = [a["cluster"] for a in jsonl(tmp_path / "assignments.jsonl")]
    assert (result["method"], result["k_chosen_by"]) == ("density", "density")
    assert result["k"] == len({c for c in assignments if c >= 0}) >= 2
    assert result["noise"] == assignments.count(-1)
    assert result["nmi"] is not None
    assert result["nmi_clustered"] >= result["nmi"] - 1e-9 or result["noise"] == 0


def test_python_api_is_the_local_kmeans_on_the_encoded_records(
    records: dict[str, Path], embedding_cache_dir: Path
) -> None:
    labelled = load_labelled_texts(records["records"], label_column="category")
    encoder = RecordEncoder(cache_dir=embedding_cache_dir)

    report = cluster_records(labelled, encoder, k=5, seed=3)

    direct = kmeans(encoder.encode(labelled.texts), 5, n_init=4, seed=3)
    np.testing.assert_array_equal(report.labels, direct.labels)
    assert report.metrics["inertia"] == pytest.approx(direct.inertia)
    assert [c.size for c in report.clusters] == np.bincount(direct.labels).tolist()


def test_adapter_changes_the_space_clustered(
    run: Any, records: dict[str, Path], tmp_path: Path
) -> None:
    # Prepare: a non-trivial adapter on the bundled encoder
    random_adapter(tmp_path / "adapter", seed=1, scale=0.3)
    common = ["--input", str(records["records"]), "--k", "6", "--json"]

    # Execute
    _, plain, _ = run(*common, "--out", str(tmp_path / "plain"))
    code, adapted, err = run(*common, "--adapter", str(tmp_path / "adapter"), "--out",
                             str(tmp_path / "adapted"))  # fmt: skip

    # Assert
    assert code == 0, err
    assert last_json(plain)["silhouette"] != pytest.approx(last_json(adapted)["silhouette"])
    document = json.loads((tmp_path / "adapted" / "clusters.json").read_text(encoding="utf-8"))
    assert document["encoder"]["adapter"] == str(tmp_path / "adapter")
    assert last_json(adapted)["records"] == INTENTS * PER_INTENT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{tiny}", "--k", "5"], "fewer records (3) than --k 5 clusters"),
        (["--k", "1"], "1 is fewer than 2 clusters"),
        (["--k-range", "2-30"], "'--k-range': '2-30' is not a range: expected LOW:HIGH"),
        (["--k-range", "9:3"], "2 <= LOW <= HIGH"),
        (["--input", "{tiny}", "--k-range", "3:9"], "too few records (3) for --k-range 3:9"),
        (["--input", "{empty}"], "holds no documents"),
        (["--label-column", "missing"], "no 'missing' column"),
        (["--method", "density", "--k", "3"], "--k or --k-range was given with --method density"),
        (["--k", "3", "--k-range", "2:5"], "both --k and --k-range were given"),
        (["--input", "{tiny}", "--method", "density"], "than --min-cluster-size 15"),
    ],
)
def test_bad_input_is_one_clear_error_in_cli_words(
    run: Any, records: dict[str, Path], args: list[str], message: str
) -> None:
    given = fill(args, records)
    if "--input" not in given:
        given += ["--input", str(records["records"])]

    code, _, err = run(*given)

    assert_one_clear_error(code, err, message)
