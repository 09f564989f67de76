"""The auditor's records embedded, split, attacked and named in the report's rows.

The files come from ``auditor_files.py`` (written at test time from the shared data).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from attacks.attribute_inference import AttributeProbe, attribute_report
from attacks.protections import KeyedRotation
from audit.auditor_data import embed_auditor_records, replace_sources, stratified_halves
from audit.auditor_records import read_auditor_records
from audit.config import AuditInputs
from audit.membership_bound import ReleaseBound
from audit.protection_cases import ProtectionCase
from audit.runner import AuditRunner
from embedding_core import Encoder
from policies import load_default_policy
from tests.audit.auditor_files import (
    GENRES_PER,
    POOL,
    write_claims_jsonl,
    write_genre_csv,
    write_pool,
)
from tests.audit.test_runner import TINY
from tests.audit.tiny_data import write_tiny_data


def test_the_stratified_halves_are_seeded_disjoint_and_hold_every_label() -> None:
    # Prepare
    labels = ["a"] * 7 + ["b"] * 4 + ["c"] * 2 + ["d"]

    # Execute
    attacker, targets = stratified_halves(labels, seed=3)

    # Assert
    assert sorted(attacker + targets) == list(range(len(labels)))
    assert stratified_halves(labels, seed=3) == (attacker, targets)
    assert stratified_halves(labels, seed=4) != (attacker, targets)
    count = Counter(labels[i] for i in attacker)
    assert count == {"a": 4, "b": 2, "c": 1, "d": 1}
    assert Counter(labels[i] for i in targets) == {"a": 3, "b": 2, "c": 1}


def test_an_auditors_attribute_is_split_embedded_and_learned_above_the_majority_baseline(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    # Prepare: STS-B's genre, a column the audit itself never reads.
    path = write_genre_csv(shared_data_dir, tmp_path / "genres.csv")
    records = read_auditor_records(
        attribute_data=path, attribute_label="genre", attribute_text="sentence"
    )
    encoder = Encoder.load()

    # Execute
    data = embed_auditor_records(
        records, lambda texts, _: encoder.encode(list(texts), show_progress=False), seed=0
    )
    task = data.attribute
    assert task is not None
    probe = AttributeProbe().fit(task.public_vectors, task.public_labels)
    report = attribute_report(
        probe, task.target_vectors, task.target_labels, target=task.name, threat_model="t"
    )

    # Assert: named by the file and its column; 45 targets of 3 balanced genres.
    assert task.name == "genres.csv genre"
    assert len(task.public_labels) + len(task.target_labels) == 3 * GENRES_PER
    assert Counter(task.target_labels) == dict.fromkeys(Counter(task.public_labels), 15)
    assert report.metrics["majority_baseline"] == pytest.approx(1 / 3)
    assert report.metrics["accuracy"] > 0.7  # captions, news and forum text are far apart
    assert [s["name"] for s in data.sources] == [
        "genres.csv (auditor's attribute data, column 'genre': half attacker's, half targets)"
    ]
    assert re.fullmatch(r"[0-9a-f]{64}", data.sources[0]["sha256"])


def test_the_auditors_pool_and_targets_replace_the_defaults_and_are_named(
    tmp_path: Path, shared_data_dir: Path
) -> None:
    # Prepare
    interactions, documents = write_pool(shared_data_dir, tmp_path)
    claims = write_claims_jsonl(shared_data_dir, tmp_path / "claims.jsonl")
    records = read_auditor_records(
        target_records=claims, membership_records=interactions, membership_documents=documents
    )
    encoder = Encoder.load()
    defaults = [
        {"name": n}
        for n in (
            "stsb (public auxiliary)",
            "banking77 test (private targets)",
            "scifact test claims (private targets)",
            "scifact train pairs (membership pool)",
        )
    ]

    # Execute
    data = embed_auditor_records(
        records, lambda texts, _: encoder.encode(list(texts), show_progress=False), seed=0
    )
    sources = replace_sources(defaults, data)

    # Assert
    pool = data.membership_pool
    assert pool is not None
    assert len(pool) == POOL
    assert pool.doc_vectors.shape[0] == len(records.document_texts or [])
    assert data.membership_name == "interactions.jsonl"
    assert data.targets is not None
    assert data.targets[0] == "claims.jsonl"
    assert data.targets[2].shape == (8, encoder.dimension)
    assert [s["name"].split(" (")[0] for s in sources] == [
        "stsb",
        "banking77 test",
        "claims.jsonl",
        "interactions.jsonl",
        "documents.jsonl",
    ]


def test_the_pool_vectors_are_float32_and_aligned(tmp_path: Path, shared_data_dir: Path) -> None:
    interactions, documents = write_pool(shared_data_dir, tmp_path)
    records = read_auditor_records(membership_records=interactions, membership_documents=documents)
    encoder = Encoder.load()
    data = embed_auditor_records(
        records, lambda texts, _: encoder.encode(list(texts), show_progress=False), seed=0
    )
    pool = data.membership_pool
    assert pool is not None
    assert pool.query_vectors.dtype == np.float32
    assert pool.doc_vectors.dtype == np.float32
    texts = records.document_texts or []
    first = json.loads(interactions.read_text().splitlines()[0])["doc_id"]
    ids = [json.loads(line)["id"] for line in documents.read_text().splitlines()]
    assert texts[int(pool.positive_index[0])] == texts[ids.index(first)]


# -- the runner: the auditor's material flows into the attack rows and the sources ----------


@pytest.fixture(scope="module")
def runner(
    tmp_path_factory: pytest.TempPathFactory, shared_data_dir: Path, embedding_cache_dir: Path
) -> AuditRunner:
    """A runner on the miniature data, aimed at the auditor's three files."""
    work = tmp_path_factory.mktemp("auditor")
    interactions, documents = write_pool(shared_data_dir, work / "pool")
    inputs = AuditInputs(
        policy=load_default_policy(),
        data_dir=write_tiny_data(shared_data_dir, work / "data"),
        cache=embedding_cache_dir,
        attribute_data=write_genre_csv(shared_data_dir, work / "genres.csv"),
        attribute_label="genre",
        attribute_text="sentence",
        target_records=write_claims_jsonl(shared_data_dir, work / "claims.jsonl"),
        membership_records=interactions,
        membership_documents=documents,
    )
    return AuditRunner(inputs, TINY, lambda _: None)


def test_the_runner_attacks_the_auditors_attribute_and_targets_and_names_them(
    runner: AuditRunner,
) -> None:
    # Prepare: two protections, one that only turns the vectors.
    rotation = KeyedRotation(runner.encoder.dimension, key=b"k" * 32)
    cases = [
        ProtectionCase("raw", lambda v: np.asarray(v, np.float32), 0.7, "none"),
        ProtectionCase("rotation", rotation.protect, 0.7, "a secret rotation", deployed=True),
    ]

    # Execute
    rows = runner.inversions(cases)

    # Assert: inversion ran on the auditor's claims only, the attribute on their genre.
    reports = runner.reports
    inversion = [r for r in reports if r.attack == "nearest_neighbour_inversion"]
    assert [r.target for r in inversion] == ["claims.jsonl raw", "claims.jsonl rotation"]
    assert all(r.metrics["texts"] == 8 for r in inversion)
    attribute = [r for r in reports if r.attack == "attribute_inference"]
    assert [(r.target, r.details["attacker"]) for r in attribute] == [
        ("genres.csv genre raw", "static"),
        ("genres.csv genre raw", "adaptive"),
        ("genres.csv genre rotation", "static"),
        ("genres.csv genre rotation", "adaptive"),
    ]
    assert all("a seeded half of genres.csv" in r.threat_model for r in attribute)
    by_case = {row["protection"]: row for row in rows}
    rotated = {r.details["attacker"]: r.metrics["advantage"] for r in attribute[2:]}
    assert by_case["rotation"]["attribute_advantage"] == max(rotated.values())
    assert by_case["rotation"]["attribute_attacker"] == "adaptive"
    assert rotated["adaptive"] > rotated["static"] + 0.2  # measured: 0.40 against -0.07
    # The report's data sources: the replaced defaults gone, the auditor's files named.
    names = [s["name"] for s in runner.data.sources]
    replaced = ("banking77 test", "scifact test claims", "scifact train pairs")
    assert not any(n.startswith(replaced) for n in names)
    files = ("genres.csv", "claims.jsonl", "interactions.jsonl", "documents.jsonl")
    assert [n.split(" ")[0] for n in names if n.startswith(files)] == list(files)


@pytest.mark.slow  # 10 adapters: 4 s on an idle machine, a minute on a loaded one
def test_the_membership_game_plays_on_the_auditors_records(runner: AuditRunner) -> None:
    # Prepare
    bound = ReleaseBound(None, None, None, None, "no bound: no adapter was given")

    # Execute
    dp_auc, control_auc = runner.membership(8.0, 1e-5, bound)

    # Assert: every row names the auditor's file; the overfit control finds members.
    membership = [r for r in runner.reports if r.attack == "membership_inference"]
    assert len(membership) == 14
    assert all(r.target.endswith(" on interactions.jsonl") for r in membership)
    assert runner.auditor.membership_pool is not None
    assert len(runner.auditor.membership_pool) == POOL
    assert control_auc is not None
    assert control_auc > 0.6
    assert dp_auc is not None
