"""The auditor's records embedded: the attribute task, the targets, the membership pool.

:func:`embed_auditor_records` turns what :func:`audit.auditor_records.read_auditor_records`
read into what replaces the audit's default targets: for ``--attribute-data`` a seeded,
class-stratified half is the attacker's labelled auxiliary data and the other half the
targets whose label it infers (without it, the attribute is BANKING77's intent: train
public, test targets); ``--target-records`` replace BANKING77 test queries and SciFact
test claims as the inversion targets; ``--membership-records`` replace SciFact's train
pairs as the membership game's pool. :func:`replace_sources` names each file with its
SHA-256 among the report's data sources, in place of the defaults it replaced.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from audit.auditor_records import AuditorRecords
from dp_training import InteractionSet

__all__ = [
    "AttributeTask",
    "AuditorData",
    "auditor_sources",
    "embed_auditor_records",
    "replace_sources",
    "stratified_halves",
]

logger = logging.getLogger(__name__)

Matrix = NDArray[np.float32]
Embed = Callable[[Sequence[str], str], Matrix]


@dataclass(frozen=True)
class AttributeTask:
    """One attribute attack's data: the attacker's labelled public half and the targets."""

    name: str  # the report's target label, before the protection's
    attribute: str  # the attribute, in words
    public: str  # the attacker's labelled data, in words
    public_vectors: Matrix
    public_labels: list[str]
    target_vectors: Matrix
    target_labels: list[str]


@dataclass(frozen=True)
class AuditorData:
    """The auditor's records embedded: what replaces the audit's default targets."""

    attribute: AttributeTask | None = None
    targets: tuple[str, list[str], Matrix] | None = None  # (name, texts, vectors)
    membership_pool: InteractionSet | None = None
    membership_name: str | None = None  # the records file's name, for the game's rows
    sources: tuple[dict[str, Any], ...] = ()


def stratified_halves(labels: Sequence[str], seed: int) -> tuple[list[int], list[int]]:
    """A seeded split of record indices into the attacker's half and the targets' half.

    Within each label the records, in a seeded random order, go alternately to the
    attacker and to the targets (the attacker first), so both halves hold every label
    with two records or more in proportion.
    """
    order = np.random.default_rng(seed).permutation(len(labels))
    seen: dict[str, int] = {}
    attacker: list[int] = []
    targets: list[int] = []
    for index in order.tolist():
        count = seen.get(labels[index], 0)
        seen[labels[index]] = count + 1
        (attacker if count % 2 == 0 else targets).append(index)
    return sorted(attacker), sorted(targets)


def embed_auditor_records(records: AuditorRecords, embed: Embed, *, seed: int) -> AuditorData:
    """Embed the auditor's records (``embed(texts, what)``) into the runner's targets."""
    attribute = targets = pool = None
    if records.attribute_texts is not None and records.attribute_labels is not None:
        name = records.attribute_path.name if records.attribute_path else "attribute data"
        labels = records.attribute_labels
        vectors = embed(records.attribute_texts, f"{name} (auditor's labelled records)")
        public, private = stratified_halves(labels, seed)
        attribute = AttributeTask(
            name=f"{name} {records.attribute_label}",
            attribute=f"the {records.attribute_label!r} column",
            public=f"a seeded half of {name}",
            public_vectors=vectors[public],
            public_labels=[labels[i] for i in public],
            target_vectors=vectors[private],
            target_labels=[labels[i] for i in private],
        )
    if records.target_texts is not None and records.target_path is not None:
        name = records.target_path.name
        targets = (name, records.target_texts, embed(records.target_texts, f"{name} (targets)"))
    if records.membership_queries is not None and records.document_texts is not None:
        positive = np.asarray(records.membership_positive, dtype=np.int64)
        pool = InteractionSet(
            query_vectors=np.ascontiguousarray(
                embed(records.membership_queries, "auditor's interaction queries (pool)")
            ),
            positive_index=positive,
            doc_vectors=np.ascontiguousarray(
                embed(records.document_texts, "auditor's documents (pool)")
            ),
            # One record per unit, as the SciFact pool: the game draws records in or out.
            unit_ids=np.arange(len(positive), dtype=np.int64),
        )
    logger.info(
        "audit: embedded the auditor's records (attribute %s, targets %s, pool %s)",
        attribute is not None,
        targets is not None,
        pool is not None,
    )
    return AuditorData(
        attribute,
        targets,
        pool,
        records.membership_path.name if records.membership_path is not None else None,
        tuple(auditor_sources(records)),
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def auditor_sources(records: AuditorRecords) -> list[dict[str, Any]]:
    """The report's data-source entries for the auditor's files (name, records, SHA-256)."""
    sources: list[dict[str, Any]] = []
    if records.attribute_path is not None and records.attribute_texts is not None:
        sources.append(
            {
                "name": f"{records.attribute_path.name} (auditor's attribute data, column "
                f"{records.attribute_label!r}: half attacker's, half targets)",
                "path": str(records.attribute_path),
                "records": len(records.attribute_texts),
                "sha256": _sha256(records.attribute_path),
            }
        )
    if records.target_path is not None and records.target_texts is not None:
        sources.append(
            {
                "name": f"{records.target_path.name} (auditor's target records, inversion)",
                "path": str(records.target_path),
                "records": len(records.target_texts),
                "sha256": _sha256(records.target_path),
            }
        )
    if records.membership_path is not None and records.documents_path is not None:
        for path, what, count in (
            (records.membership_path, "membership records", records.membership_queries),
            (records.documents_path, "membership documents", records.document_texts),
        ):
            sources.append(
                {
                    "name": f"{path.name} (auditor's {what}, membership pool)",
                    "path": str(path),
                    "records": len(count or []),
                    "sha256": _sha256(path),
                }
            )
    return sources


# The default sources (audit.data) each of the auditor's files stands in for.
_BANK_TEST, _CLAIMS, _POOL = "banking77 test", "scifact test claims", "scifact train pairs"


def replace_sources(sources: list[dict[str, Any]], data: AuditorData) -> list[dict[str, Any]]:
    """The report's data sources: the audit's own, less those replaced, then the auditor's.

    BANKING77 test goes when neither inversion nor the attribute attacks it any more;
    SciFact's test claims with ``--target-records``; its train pairs with the auditor's
    membership pool.
    """
    dropped: list[str] = []
    if data.targets is not None:
        dropped.append(_CLAIMS)
        if data.attribute is not None:
            dropped.append(_BANK_TEST)
    if data.membership_pool is not None:
        dropped.append(_POOL)
    kept = [s for s in sources if not any(str(s["name"]).startswith(d) for d in dropped)]
    return [*kept, *data.sources]
