"""The adaptive attribute attacker sees through a protection that fools the static one.

Real BANKING77 queries of five intents, embedded by the bundled encoder. A secret random
rotation keeps every inner product, so it hides nothing; a probe trained on raw public
vectors (the static attacker) is lost in the rotated space, while one trained on rotated
public vectors (the adaptive attacker, who had public texts protected the same way)
infers the intent as well as on raw vectors: an L2-regularised logistic regression is
rotation invariant.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from attacks.adaptive_attribute import ADAPTIVE, STATIC, attribute_attacks
from attacks.attribute_inference import AttributeProbe
from attacks.protections import KeyedRotation
from embedding_core import Encoder

INTENTS = ("card_arrival", "exchange_rate", "lost_or_stolen_card", "top_up_failed", "pin_blocked")
PER_INTENT = (40, 30)  # train (public) and test (targets) queries per intent


def _rows(path: Path, count: int) -> tuple[list[str], list[str]]:
    kept: dict[str, list[str]] = defaultdict(list)
    with open(path, newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if row["category"] in INTENTS and len(kept[row["category"]]) < count:
                kept[row["category"]].append(row["text"])
    labels = [intent for intent in INTENTS for _ in kept[intent]]
    return [text for intent in INTENTS for text in kept[intent]], labels


@pytest.fixture(scope="module")
def banking(shared_data_dir: Path) -> tuple[np.ndarray, list[str], np.ndarray, list[str]]:
    encoder = Encoder.load()
    train, train_labels = _rows(shared_data_dir / "banking77" / "train.csv", PER_INTENT[0])
    test, test_labels = _rows(shared_data_dir / "banking77" / "test.csv", PER_INTENT[1])
    vectors = encoder.encode([*train, *test], show_progress=False)
    return vectors[: len(train)], train_labels, vectors[len(train) :], test_labels


def _attack(
    banking: tuple[np.ndarray, list[str], np.ndarray, list[str]], view: object
) -> tuple[dict[str, float], dict[str, float]]:
    public, public_labels, targets, target_labels = banking
    static = AttributeProbe().fit(public, public_labels)
    reports = attribute_attacks(
        static,
        view,  # type: ignore[arg-type]
        public,
        public_labels,
        targets,
        target_labels,
        target="banking77-test intent protected",
        public="BANKING77 train",
        attribute="the intent",
        threat="a test protection",
    )
    assert [r.details["attacker"] for r in reports] == [STATIC, ADAPTIVE]
    return reports[0].metrics, reports[1].metrics


def test_a_secret_rotation_fools_the_static_probe_but_not_the_adaptive_one(
    banking: tuple[np.ndarray, list[str], np.ndarray, list[str]],
) -> None:
    # Prepare
    rotation = KeyedRotation(banking[0].shape[1], key=b"r" * 32)

    # Execute
    raw_static, raw_adaptive = _attack(banking, lambda v: np.asarray(v, np.float32))
    static, adaptive = _attack(banking, rotation.protect)

    # Assert: on raw vectors the two attackers are one; under the rotation the static
    # probe falls to near chance (5 balanced intents: 0.2) while the adaptive one keeps
    # its raw accuracy. 150 targets: a binomial standard error of at most 0.04.
    assert raw_static["accuracy"] == raw_adaptive["accuracy"] > 0.8
    assert static["accuracy"] < 0.5
    assert adaptive["accuracy"] >= raw_static["accuracy"] - 0.03
    assert adaptive["advantage"] - static["advantage"] > 0.4
    assert adaptive["majority_baseline"] == pytest.approx(0.2)


def test_both_attackers_name_themselves_in_the_threat_model(
    banking: tuple[np.ndarray, list[str], np.ndarray, list[str]],
) -> None:
    # Prepare
    public, labels, targets, target_labels = banking
    noise = np.random.default_rng(0)

    # Execute
    static, adaptive = attribute_attacks(
        AttributeProbe().fit(public, labels),
        lambda v: np.asarray(v + noise.normal(0, 0.05, v.shape), np.float32),
        public,
        labels,
        targets,
        target_labels,
        target="t",
        public="BANKING77 train",
        attribute="the intent",
        threat="noise",
        details={"protection": "noise"},
    )

    # Assert
    assert static.threat_model.startswith("static attacker: a linear probe trained on raw")
    assert adaptive.threat_model.startswith("adaptive attacker: knows the protection")
    assert all(
        "BANKING77 train" in r.threat_model and r.threat_model.endswith("; noise")
        for r in (static, adaptive)
    )
    assert static.details == {"protection": "noise", "attacker": STATIC}
    assert adaptive.details == {"protection": "noise", "attacker": ADAPTIVE}
