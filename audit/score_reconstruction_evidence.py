"""The score-reconstruction row: a partner of a default gateway rebuilds stored vectors.

:func:`probe_gateway` starts a real ``fedembed index serve`` (gateway and store, one
process on loopback) with the audited model, adapter, DCPE keyring and CKKS key and the
gateway's default partner policy, lets a node upload a seeded sample of SciFact
documents into an at-rest, a DCPE and a CKKS collection, then issues one partner key
per collection *with the gateway's defaults* (no vector queries, ``rank`` score release,
the default budget and probe detection; only the token-bucket rate limit is lifted, since
it spaces queries in time and bounds nothing) and runs
:mod:`attacks.score_reconstruction` through :class:`GatewayOracle`: vector probes first,
text probes (public sentences, embedded by the attacker with the public encoder and the
published adapter) when vectors are refused, up to the configured number of probes. The
control runs the same attack in process against exact scores and vector probes on the
same documents: it must rebuild them, or a low score proves nothing.

The attacker asks each probe for the largest ``k`` its key allows: it reads the cap from
the 403 that refuses ``k = 1000`` (the default cap is 10, what nDCG@10 needs).

Size: the leak per document grows with how often a document is returned, so a collection
smaller than the deployed one overstates it (1,000 answers at top-k 10 return each of 300
documents about 33 times, each of 5,183 about twice). The full profile therefore holds
the whole audit corpus (SciFact's 5,183 documents); the quick profile holds its own
1,500-document corpus. Every CKKS query scores every block under encryption, so CKKS
collections get their own probe count in the quick profile.
"""

from __future__ import annotations

import logging
import re
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from attacks.base import AttackReport
from attacks.score_reconstruction import (
    Answer,
    Hit,
    ProbeBatch,
    ProbePlan,
    Refusal,
    ScoreReconstructionAttack,
    collect,
    reconstruction_report,
    simulate_answers,
    text_probes,
    vector_probes,
)
from audit.data import AuditData
from crypto.ckks_search import CkksDocumentEncryptor
from crypto.ckks_search_key import CkksSearchKey, save_ckks_key
from crypto.dcpe import ScaleAndPerturb
from crypto.dcpe_keys import DcpeKeyring
from embedding_core.adapter import Adapter
from embedding_core.progress import Progress as Meter
from embedding_core.time_share import TimeShare
from index_client.errors import PermissionDeniedError, RateLimitedError
from index_client.gateway_client import GatewayClient
from index_client.vector_space import VectorSpace
from secure_index.sealing import KeyFileKeks
from secure_index.service.local_service import LocalIndexService, start_index_service

__all__ = [
    "KINDS",
    "LIFTED_RATE",
    "MAX_K",
    "GatewayOracle",
    "ProbeSetup",
    "attack_collection",
    "control_report",
    "probe_gateway",
    "rows",
    "serve",
    "setup_from",
    "upload",
]

logger = logging.getLogger(__name__)

KINDS: Final = ("at-rest", "dcpe", "ckks")
PROBE_FLOOR: Final = 50  # probes a time-sized collection always gets
SIZED_BATCH: Final = 10  # probes between a time share's checks
AUDIT_DCPE_BETA: Final = 1.0
RATE_WAIT_S: Final = 10.0  # a 429 asking for a longer wait is the budget, not the rate
LIFTED_RATE: Final = 100_000  # per minute, and as the burst (the schema allows both)
MAX_K: Final = 1000  # the largest k the query schema accepts: the first ask
_CAP_RE: Final = re.compile(r"k <= (\d+)")
Matrix = NDArray[np.float32]
Progress = Callable[[str], None]


class GatewayOracle:
    """The partner's side of the query endpoint: probes in, (id, rank, score) out.

    A strong attacker asks for as many results per probe as its key allows: with ``k``
    None the oracle first asks for :data:`MAX_K` (the query schema's largest ``k``) and
    reads its key's cap from the 403 that refuses it (``expected: k <= N``), then keeps
    that ``k``. Rate-limit 429s are waited out (a real attacker waits); a 429 that asks
    for more than :data:`RATE_WAIT_S` (the query budget) and every other 403 come back as
    :class:`Refusal`.
    """

    def __init__(self, client: GatewayClient, collection: str, k: int | None = None) -> None:
        self.client, self.collection = client, collection
        self.k = MAX_K if k is None else k
        self.cap_refusals = 0  # 403s that told the oracle its key's top-k cap

    def __call__(self, batch: ProbeBatch) -> Sequence[Answer]:
        """Answer the batch's probes one by one; stop at the first refusal."""
        out: list[Answer] = []
        for i, vector in enumerate(batch.vectors):
            answer = self._ask(batch.texts[i] if batch.kind == "text" else None, vector)
            out.append(answer)
            if isinstance(answer, Refusal):
                break
        return out

    def _ask(self, text: str | None, vector: NDArray[np.float64]) -> Answer:
        while True:
            try:
                if text is not None:
                    result = self.client.query(self.collection, text, k=self.k)
                else:
                    result = self.client.query(self.collection, vector=vector, k=self.k)
            except RateLimitedError as exc:
                if exc.retry_after_s > RATE_WAIT_S:
                    return Refusal(exc.status, exc.problem)
                time.sleep(exc.retry_after_s)
                continue
            except PermissionDeniedError as exc:
                cap = _top_k_cap(exc.expected)
                if cap is not None and 1 <= cap < self.k:
                    self.k, self.cap_refusals = cap, self.cap_refusals + 1
                    logger.info("score reconstruction: the key's top-k cap is %d", cap)
                    continue
                return Refusal(exc.status, exc.problem)
            return tuple(Hit(h.doc_id, h.rank, h.score) for h in result.hits)


def _top_k_cap(expected: str) -> int | None:
    """The cap a top-k refusal states (``k <= N``), or None for any other refusal."""
    found = _CAP_RE.fullmatch(expected.strip())
    return int(found.group(1)) if found else None


@dataclass(frozen=True)
class ProbeSetup:
    """What the row attacks and with what.

    Attributes:
        doc_ids: The uploaded documents' ids.
        documents: Their plaintext (base-encoder) vectors, the truth.
        public_texts: The attacker's probe texts.
        public_vectors: Those texts as the gateway embeds them (encoder, then adapter).
        probes: Probes per collection kind.
        seed: Seeds the probes and the attacker's shadow corpus.
    """

    doc_ids: list[str]
    documents: Matrix
    public_texts: list[str]
    public_vectors: Matrix
    probes: dict[str, int]
    seed: int = 0
    space: VectorSpace | None = None  # the encoder space of both (the gateway's too)
    ckks_seconds: float | None = None  # the CKKS collection's probes' time (None: its count)


def setup_from(
    data: AuditData,
    adapter: Adapter | None,
    *,
    documents: int | None,
    probes: dict[str, int],
    seed: int,
    space: VectorSpace | None = None,
    ckks_seconds: float | None = None,
) -> ProbeSetup:
    """A seeded sample of the audit's SciFact documents (None: all) and the public texts."""
    corpus = data.retrieval.documents
    size = len(corpus) if documents is None else min(documents, len(corpus))
    pick = np.sort(np.random.default_rng(seed + 11).choice(len(corpus), size, replace=False))
    public = np.asarray(data.public_vectors, dtype=np.float32)
    seen = adapter.transform(public) if adapter is not None else public
    return ProbeSetup(
        doc_ids=[f"doc-{i}" for i in pick],  # opaque: no SciFact id reaches the gateway
        documents=np.asarray(corpus[pick], dtype=np.float32),
        public_texts=list(data.public_texts),
        public_vectors=np.asarray(seen, dtype=np.float32),
        probes=probes,
        seed=seed,
        space=space,
        ckks_seconds=ckks_seconds,
    )


def serve(
    work: Path,
    dcpe_keyring: Path | None,
    ckks_key: Path | None,
    dimension: int,
    adapter: Path | None,
    model: Path | None,
    encoder_backend: str | None = None,
) -> tuple[LocalIndexService, Path]:
    """Start ``fedembed index serve`` with these keys (fresh ones where None); its keyring."""
    kek = work / "kek.json"
    KeyFileKeks.create(kek)
    if dcpe_keyring is None:
        dcpe_keyring = work / "dcpe_keyring.json"
        DcpeKeyring.create(dcpe_keyring, tenant="audit", beta=AUDIT_DCPE_BETA)
    if ckks_key is None:
        ckks_key = work / "ckks_search_key.bin"
        save_ckks_key(CkksSearchKey.generate(dimension=dimension), ckks_key)
    args = ["--key-file", str(kek), "--dcpe-key-file", str(dcpe_keyring),
            "--ckks-key-file", str(ckks_key)]  # fmt: skip
    if adapter is not None:
        args += ["--adapter", str(adapter)]
    if model is not None:
        args += ["--model", str(model)]
    if encoder_backend is not None:  # the gateway embeds text probes in the audited space
        args += ["--encoder-backend", encoder_backend]
    return start_index_service(work / "service", extra_args=tuple(args)), dcpe_keyring


def upload(
    service: LocalIndexService,
    setup: ProbeSetup,
    keyring: Path,
    kinds: Sequence[str] = KINDS,
) -> dict[str, str]:
    """Create one collection per kind (of ``kinds``) and upload the documents as a node would."""
    dim = setup.documents.shape[1]
    names = {kind: f"audit-probe-{kind}" for kind in kinds}
    with service.admin_client() as admin:
        if "at-rest" in names:
            admin.create_collection(names["at-rest"], dim, metric="cosine", protection="at-rest")
        if "dcpe" in names:
            admin.create_collection(names["dcpe"], dim, metric="l2", protection="dcpe")
        if "ckks" in names:
            admin.create_ckks_collection(names["ckks"])
        node = admin.issue_credential(
            "node", "audit-node", list(names.values()), rate_per_minute=LIFTED_RATE,
            burst=LIFTED_RATE,
        )  # fmt: skip
    ids, vectors = setup.doc_ids, np.asarray(setup.documents, dtype=np.float32)
    what = f"audit: score reconstruction, uploading {len(ids)} documents to each collection"
    with (
        service.gateway_client(node.token, timeout_s=300.0) as gateway,
        Meter(len(ids) * len(names), what=what, unit="documents") as meter,
    ):
        cipher = ScaleAndPerturb(DcpeKeyring.load(keyring).current()).encrypt(vectors).vectors
        for kind, rows in (("at-rest", vectors), ("dcpe", cipher)):
            for start in range(0, len(ids) if kind in names else 0, 256):
                batch = slice(start, start + 256)
                gateway.upsert_documents(names[kind], ids[batch], rows[batch], space=setup.space)
                meter.advance(len(ids[batch]))
        if "ckks" not in names:
            return names
        encryptor = CkksDocumentEncryptor(gateway.ckks_public_context(), dimension=dim)
        capacity = encryptor.layout.capacity
        for number, start in enumerate(range(0, len(ids), capacity)):
            block = encryptor.encrypt_block(vectors[start : start + capacity])
            gateway.upload_block(
                names["ckks"], number, ids[start : start + capacity], block, space=setup.space
            )
            meter.advance(len(ids[start : start + capacity]))
    return names


def _plans(setup: ProbeSetup, count: int) -> list[ProbePlan]:
    dim = setup.documents.shape[1]
    return [
        vector_probes(dim, count, seed=setup.seed),
        text_probes(setup.public_texts, setup.public_vectors, count, seed=setup.seed + 1),
    ]


def _truth(setup: ProbeSetup) -> dict[str, NDArray[np.float32]]:
    return dict(zip(setup.doc_ids, setup.documents, strict=True))


def probe_gateway(
    setup: ProbeSetup,
    *,
    adapter: Path | None,
    model: Path | None,
    dcpe_keyring: Path | None,
    ckks_key: Path | None,
    progress: Progress,
) -> list[AttackReport]:
    """One report per collection kind: a default partner key's reconstruction."""
    reports = []
    with tempfile.TemporaryDirectory(prefix="fedembed-audit-probe-") as tmp:
        work = Path(tmp)
        dim = setup.documents.shape[1]
        progress("score reconstruction: starting a gateway with the default partner policy")
        backend = setup.space.encoder_backend if setup.space is not None else None
        service, keyring = serve(work, dcpe_keyring, ckks_key, dim, adapter, model, backend)
        try:
            names = upload(service, setup, keyring)
            for kind in KINDS:
                count = setup.probes[kind]
                if count <= 0:
                    continue
                seconds = setup.ckks_seconds if kind == "ckks" else None
                sized = f" ({count} probes)" if seconds is None else (
                    f" (up to {count} probes, as many as {seconds:g} s allow, at least "
                    f"{min(PROBE_FLOOR, count)})"
                )  # fmt: skip
                progress(f"score reconstruction: probing the {kind} collection{sized}")
                reports.append(
                    attack_collection(service, setup, kind, names[kind], count, seconds=seconds)
                )
        finally:
            service.stop()
    return reports


def attack_collection(
    service: LocalIndexService,
    setup: ProbeSetup,
    kind: str,
    collection: str,
    count: int,
    *,
    probe_kinds: Sequence[str] = ("vector", "text"),
    grant: dict[str, Any] | None = None,
    budget: int | None = None,
    lift_rate: bool = True,
    seconds: float | None = None,
) -> AttackReport:
    """Issue a partner key (defaults, plus ``grant``) and attack ``collection`` with it.

    Each probe kind has ``count`` probes; ``budget`` (default ``count``) bounds the probes
    sent in all, a refused one included. ``lift_rate`` lifts the key's token-bucket rate
    limit, which spaces the queries in time and so changes only the wall time. The
    attacker learns its top-k cap from the gateway (:class:`GatewayOracle`). ``seconds``
    sizes the probes to the machine: batches of 10 while they fit in that time (at least
    ``PROBE_FLOOR``, at most the budget).
    """
    started = time.perf_counter()
    lifted: dict[str, Any] = {"rate_per_minute": LIFTED_RATE, "burst": LIFTED_RATE}
    rate = lifted if lift_rate else {}
    with service.admin_client() as admin:
        key = admin.issue_credential(
            "partner", f"prober-{kind}-{time.monotonic_ns()}", [collection],
            **rate, **(grant or {}),
        )  # fmt: skip
    fields = ("top_k_cap", "vector_queries", "score_release", "query_budget",
              "budget_window_s", "rate_per_minute", "burst")  # fmt: skip
    policy = {name: getattr(key.key, name) for name in fields}
    plans = [p for p in _plans(setup, count) if p.kind in probe_kinds]
    limit = count if budget is None else budget
    what = f"audit: score reconstruction, {kind} collection"
    with (
        service.gateway_client(key.token, timeout_s=300.0) as client,
        Meter(limit, what=what, unit="probes") as meter,
    ):
        oracle = GatewayOracle(client, collection)

        def counted(batch: ProbeBatch) -> Sequence[Answer]:
            answers = oracle(batch)
            meter.advance(len(answers))
            return answers

        if seconds is None:
            transcript = collect(counted, plans, limit)
        else:
            share = TimeShare(seconds, floor=min(PROBE_FLOOR, limit))
            transcript = collect(counted, plans, limit, SIZED_BATCH, more=share.more)
    attack = ScoreReconstructionAttack(
        setup.public_vectors, len(setup.doc_ids), affine=kind == "dcpe", seed=setup.seed
    )
    result = attack.reconstruct(transcript, setup.doc_ids)
    granted = "the gateway's defaults" + (f" and {grant}" if grant else "")
    return reconstruction_report(
        result,
        _truth(setup),
        transcript,
        attack.prior,
        target=f"scifact-docs {kind} collection ({'default' if not grant else 'granted'} key)",
        threat_model=f"a partner with a key issued with {granted} sends up to {count} "
        f"{' or '.join(probe_kinds)} probes (texts: public sentences it embeds with the public "
        "encoder and adapter), each asking for the largest k its key allows, and rebuilds "
        "the stored vectors from ids, ranks and any released scores",
        seconds=time.perf_counter() - started,
        details={
            "collection_kind": kind,
            "documents": len(setup.doc_ids),
            "partner_policy": policy,
            "top_k": oracle.k,
            "top_k_refusals": oracle.cap_refusals,
            "rate_limit": "lifted" if lift_rate else "default",
            "time_share_s": seconds,
        },
    )


def control_report(setup: ProbeSetup, *, probes: int | None = None, k: int = MAX_K) -> AttackReport:
    """The same attack against exact scores and vector probes, in process (the control).

    ``probes`` defaults to the most any collection kind gets; ``k`` to the largest cap a
    key can be granted (on the whole SciFact corpus, 2,000 probes: 0.98 at k 1000, 0.70
    at k 100).
    """
    started = time.perf_counter()
    ids, docs = setup.doc_ids, np.asarray(setup.documents, dtype=np.float64)
    count = probes if probes is not None else max(setup.probes.values())

    def oracle(batch: ProbeBatch) -> Sequence[Answer]:
        return simulate_answers(batch.vectors, ids, docs, k, "exact")

    transcript = collect(oracle, _plans(setup, count)[:1], count)
    attack = ScoreReconstructionAttack(setup.public_vectors, len(ids), seed=setup.seed)
    return reconstruction_report(
        attack.reconstruct(transcript, ids),
        _truth(setup),
        transcript,
        attack.prior,
        target="scifact-docs exact scores, vector probes (control)",
        threat_model=f"control: the same attack, {count} vector probes answered with exact "
        f"top-{k} scores (what a key granted exact scores, vectors and top-k {k} gets)",
        seconds=time.perf_counter() - started,
        details={"control": True},
    )


def rows(reports: Sequence[AttackReport]) -> list[dict[str, Any]]:
    """The report's table: one row per collection kind (and the control)."""
    return [
        {
            "target": r.target,
            "mean_cosine": r.metrics["mean_cosine"],
            "share_above_0_9": r.metrics["share_above_0_9"],
            "baseline_cosine": r.metrics["baseline_cosine"],
            "probes_attempted": int(r.metrics["probes_attempted"]),
            "probes_answered": int(r.metrics["probes_answered"]),
            "estimator": r.details["estimator"],
        }
        for r in reports
    ]
