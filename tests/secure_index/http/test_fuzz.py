"""Fuzzing both HTTP APIs over real sockets: whatever is sent, no answer is a 5xx.

A split deployment (gateway and store in separate processes, the gateway with a CKKS and a
DCPE key) holds an at-rest, a DCPE and a CKKS collection with documents in each. Keys are
scoped to those collections or to ``*``, so the data routes are reached, not refused at
the scope check. Hypothesis (seeded: ``derandomize``, a bounded number of examples per
route) draws names, ids, vectors, ``k``, filters, binary and JSON bodies, tokens and
headers for every route of the gateway (admin included) and of the store, mostly values
that pass the key and scope checks, so the generated requests themselves get answers
from the data routes (2xx asserted); one valid request per route first proves that each
route answers. Schemathesis then sends the schema's own cases with the same keys.
"""

from __future__ import annotations

import base64
import json
import secrets
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import numpy as np
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error

from crypto.ckks_search import CkksDocumentEncryptor
from crypto.ckks_search_key import CkksSearchKey, save_ckks_key
from crypto.dcpe_keys import DcpeKeyring
from index_client import routes
from index_client.block_format import OCTET_STREAM, pack_block_upload
from index_client.names import DOC_ID_RE, NAME_RE, is_name
from index_client.routes import Route
from secure_index.service.local_service import LocalIndexService, start_index_service

DIM = 16
EXAMPLES = 50
SCHEMA_EXAMPLES = 6
DOCS, DCPE, SEALED = "fz-docs", "fz-dcpe", "fz-sealed"
COLLECTIONS = (DOCS, DCPE, SEALED)
NEVER_2XX = {routes.CREATE_CKKS_COLLECTION, routes.STORE_CKKS_CREATE}  # valid ones: 18 MB each
NEVER_2XX |= {routes.LOAD_ADAPTER}  # this gateway embeds no text, so it takes no adapter
ADAPTER_BODY = {"version": "1", "manifest": "", "weights": "", "manifest_sha256": "0" * 64,
                "weights_sha256": "0" * 64}  # fmt: skip
SETTINGS = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    phases=[Phase.generate],  # every answer is recorded, nothing raised, nothing to shrink
    suppress_health_check=list(HealthCheck),
)
ADVERSARIAL = (
    ".", "..", "", "x/../" + DOCS, "../" + DOCS, DOCS + "/..", "a b", "a\tb", "a\x00b", "-a",
    "_a", "a.b", "a" * 65, "a" * 513, "a" * 10_000, "%2e%2e", "é", "*", "\\", DOCS + "\n",
)  # fmt: skip
ADMIN_ROUTES = {
    routes.CREATE_COLLECTION, routes.ADMIN_COLLECTIONS, routes.SNAPSHOT,
    routes.CREATE_CKKS_COLLECTION, routes.ISSUE_CREDENTIAL, routes.LIST_CREDENTIALS,
    routes.REVOKE_CREDENTIAL, routes.LOAD_ADAPTER, routes.CURRENT_ADAPTER,
}  # fmt: skip
NODE_ROUTES = {
    routes.UPSERT_DOCUMENTS, routes.DELETE_DOCUMENTS, routes.CKKS_PUBLIC_CONTEXT,
    routes.PUT_BLOCK, routes.DELETE_BLOCK,
}  # fmt: skip
BINARY_ROUTES = {
    routes.PUT_BLOCK, routes.STORE_CKKS_PUT_BLOCK, routes.STORE_CKKS_SCORE,
}  # fmt: skip


@dataclass(frozen=True)
class Call:
    """One request: raw path values (sent percent-encoded, even when invalid)."""

    route: Route
    path: dict[str, str] = field(default_factory=dict)
    token: str | None = None
    scheme: str = "Bearer "
    body: bytes | None = None
    content_type: str | None = None
    params: dict[str, str] | None = None

    def url(self) -> str:
        def segment(value: str) -> str:  # dot segments would be resolved by the client
            return "%2E" * len(value) if value in {".", ".."} else quote(value, safe="")

        url = self.route.template
        for name, value in self.path.items():
            url = url.replace("{" + name + "}", segment(value))
        return url


@dataclass
class Ledger:
    """Every answer's status per route; the 5xx ones with their request."""

    sent: int = 0
    statuses: Counter[tuple[Route, int]] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)

    def send(self, client: httpx.Client, call: Call) -> None:
        headers = {} if call.content_type is None else {"Content-Type": call.content_type}
        if call.token is not None and (call.scheme + call.token).strip():
            headers["Authorization"] = (call.scheme + call.token).strip()  # h11 needs no blanks
        self.sent += 1
        try:
            r = client.request(
                call.route.method, call.url(), content=call.body, headers=headers,
                params=call.params,
            )  # fmt: skip
        except httpx.TransportError as exc:  # a crashed or hung service
            self.server_errors.append(f"{call.route} {call.url()[:80]}: {exc!r}")
            return
        self.statuses[call.route, r.status_code] += 1
        if r.status_code >= 500:
            self.server_errors.append(f"{call.route} {call.url()[:80]}: {r.status_code} {r.text}")

    def reached(self, route: Route) -> bool:
        return any(200 <= s < 300 for (r, s) in self.statuses if r == route)

    def count(self, route: Route) -> int:
        return sum(n for (r, _), n in self.statuses.items() if r == route)


@dataclass(frozen=True)
class Fleet:
    """The running split deployment and what the fuzz needs to reach its data routes."""

    gateway: LocalIndexService
    store: LocalIndexService
    store_token: str
    tokens: dict[str, str]
    throwaway_key_ids: tuple[str, ...]
    blocks: tuple[bytes, ...]  # packed uploads of node-a's blocks 1 and 2
    query_ciphertext: bytes


def _unit(rows: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, DIM))
    return np.asarray(x / np.linalg.norm(x, axis=1, keepdims=True), dtype=np.float32)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("fuzz")
    key = CkksSearchKey.generate(dimension=DIM)
    save_ckks_key(key, root / "ckks_search.key")
    DcpeKeyring.create(root / "dcpe_keyring.json", tenant="consortium", beta=0.05)
    store_token = secrets.token_urlsafe(24)
    env = {"FEDEMBED_INDEX_STORE_TOKEN": store_token}
    store = start_index_service(
        root / "store", kek=secrets.token_bytes(32), extra_args=("--role", "store"), env=env
    )
    try:
        gateway = start_index_service(
            root / "gateway",
            kek=secrets.token_bytes(32),
            extra_args=("--role", "gateway", "--store-url", store.url, "--no-text-queries",
                        "--ckks-key-file", str(root / "ckks_search.key"),
                        "--dcpe-key-file", str(root / "dcpe_keyring.json")),
            env={**env, "FEDEMBED_INDEX_SUSPEND_ON_PROBING": "false"},  # fuzzed vectors probe
        )  # fmt: skip
        try:
            yield _provision(gateway, store, store_token, key)
        finally:
            gateway.stop()
    finally:
        store.stop()


def _provision(
    gateway: LocalIndexService, store: LocalIndexService, store_token: str, key: CkksSearchKey
) -> Fleet:
    """Collections with documents, keys in scope, throwaway keys to revoke, valid blocks."""
    with gateway.admin_client() as admin:
        admin.create_collection(DOCS, DIM)
        admin.create_collection(DCPE, DIM, metric="l2", protection="dcpe")
        admin.create_ckks_collection(SEALED)
        tokens = {
            label: admin.issue_credential(
                role,
                holder,
                scopes,
                top_k_cap=50,
                rate_per_minute=10**6,
                burst=10**5,
                vector_queries=True,  # fuzzed query vectors reach the search
                query_budget=10**6,
            ).token
            for label, role, holder, scopes in (
                ("partner", "partner", "insurer-x", list(COLLECTIONS)),
                ("partner-all", "partner", "insurer-y", ["*"]),
                ("node", "node", "node-a", list(COLLECTIONS)),
                ("node-all", "node", "node-b", ["*"]),
                ("revoked", "node", "node-c", ["*"]),
            )
        }
        throwaway = tuple(
            admin.issue_credential("partner", f"t{i}", ["*"]).key.key_id for i in (1, 2)
        )
        revoked = next(k for k in admin.credentials() if k.name == "node-c")
        admin.revoke_credential(revoked.key_id)
    with gateway.gateway_client(tokens["node"]) as node:
        for name in (DOCS, DCPE):
            node.upsert_documents(name, [f"na-{i}" for i in range(8)], _unit(8, 1))
        encryptor = CkksDocumentEncryptor(node.ckks_public_context(), dimension=DIM)
        ids = [[f"na-b{n}-{i}" for i in range(4)] for n in range(3)]
        blocks = [encryptor.encrypt_block(_unit(4, n)) for n in range(3)]
        node.upload_block(SEALED, 0, ids[0], blocks[0])
    with gateway.gateway_client(tokens["node-all"]) as node_b:
        node_b.upsert_documents(DOCS, ["nb-0", "nb-1"], _unit(2, 2))
    return Fleet(
        gateway=gateway,
        store=store,
        store_token=store_token,
        tokens=tokens,
        throwaway_key_ids=throwaway,
        blocks=(pack_block_upload(ids[1], blocks[1]), pack_block_upload(ids[2], blocks[2])),
        query_ciphertext=key.encrypt_query(_unit(1, 3)[0]),
    )


# --- what Hypothesis draws ---------------------------------------------------------------


def _weighted(*choices: tuple[st.SearchStrategy[Any], int]) -> st.SearchStrategy[Any]:
    """One of ``choices``, each drawn about ``weight`` times as often as a weight of 1."""
    pool = [strategy for strategy, weight in choices for _ in range(weight)]
    return st.sampled_from(pool).flatmap(lambda strategy: strategy)


def _names(*known: str) -> st.SearchStrategy[str]:
    """Mostly names that exist (the data path is reached), else valid, hostile or any."""
    return _weighted(
        (st.sampled_from(known or COLLECTIONS), 4),
        (st.from_regex(NAME_RE, fullmatch=True), 1),
        (st.sampled_from(ADVERSARIAL), 2),
        (st.text(max_size=70), 1),
    )


def _bounded_names(*valid: str) -> st.SearchStrategy[str]:
    """Names to create: valid ones only from ``valid`` (creations stay few), else invalid."""
    invalid = st.text(max_size=70).filter(lambda v: not is_name(v))
    return st.one_of(st.sampled_from(valid), st.sampled_from(ADVERSARIAL), invalid)


NUMBERS = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(["1e3", "0x1", "999999", "1000000", str(10**30), "-0", " 1", ""]),
    st.text(max_size=5),
)
FLOATS = st.one_of(
    st.floats(width=32, min_value=-1, max_value=1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 1e38, -1e38, 1e-45, 1e300]),
)
VECTORS = _weighted(
    (st.integers(0, 9).map(lambda seed: _unit(1, seed)[0].tolist()), 4),
    (st.lists(FLOATS, min_size=DIM, max_size=DIM), 2),
    (st.lists(FLOATS, max_size=DIM + 3), 1),
    (st.just([0.0] * DIM), 1),
)
KS = _weighted(
    (st.integers(1, 50), 4),
    (st.integers(-2, 60), 1),
    (st.sampled_from([1000, 1001, 10_000, 10**12]), 1),
    (st.one_of(st.floats(allow_nan=False), st.text(max_size=3), st.none()), 1),
)
TAGS = st.lists(
    _weighted(
        (st.from_regex(r"[A-Za-z0-9_.:-]{1,64}", fullmatch=True), 3), (st.text(max_size=70), 1)
    ),
    max_size=4,
)
IDS = _weighted(
    (st.sampled_from(["na-0", "na-1", "nb-0", "na-b0-0", "fz-x"]), 2),
    (st.from_regex(DOC_ID_RE, fullmatch=True), 2),
    (st.text(max_size=140), 1),
)
OWNERS = _names("node-a", "node-b", "insurer-x")
JUNK = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


def _json(
    shaped: st.SearchStrategy[Any], loose: st.SearchStrategy[Any] | None = None
) -> st.SearchStrategy[bytes]:
    """Mostly the route's own shape (drawn values), else fields that may be missing or
    extra, JSON of any shape, or bytes that are no JSON at all."""
    document = _weighted((shaped, 5), (loose if loose is not None else shaped, 1), (JUNK, 1))
    encoded = document.map(lambda v: json.dumps(v, allow_nan=True).encode())
    return _weighted((encoded, 6), (st.binary(max_size=64), 1))


def _maybe(required: dict[str, Any], **optional: st.SearchStrategy[Any]) -> Any:
    strategies = {
        k: v if isinstance(v, st.SearchStrategy) else st.just(v) for k, v in required.items()
    }
    return st.fixed_dictionaries(strategies, optional=optional)


JSON = "application/json"
JSON_TYPES = st.sampled_from([JSON] * 10 + ["text/plain", OCTET_STREAM, None])
NO_PARAMS: st.SearchStrategy[dict[str, str] | None] = st.none()
BINARY_TYPES = st.sampled_from([OCTET_STREAM] * 8 + ["application/json", None])
SCHEMES = st.sampled_from(["Bearer "] * 20 + ["bearer ", "", "Basic "])
NO_BODY = st.one_of(st.none(), st.binary(max_size=16))
DIMENSIONS = st.one_of(st.just(DIM), st.integers(-1, 5000), st.text(max_size=3))
METRICS = st.sampled_from(["cosine", "ip", "l2", "x", ""])
PROTECTIONS = st.sampled_from(["at-rest", "dcpe", "ckks", ""])
SMALL = st.integers(-1, 5000)
BASE64_JUNK = st.binary(max_size=64).map(lambda b: base64.b64encode(b).decode())

FILTERS = _maybe({}, owner=OWNERS, tags=TAGS)
QUERY_BODY = _json(
    _maybe({"vector": VECTORS, "k": KS}, filters=FILTERS),
    _maybe({}, vector=VECTORS, text=st.text(max_size=40), k=KS, filters=FILTERS, x=JUNK),
)
ITEMS = st.lists(_maybe({"id": IDS, "vector": VECTORS}, tags=TAGS), min_size=1, max_size=4)
UPSERT_BODY = _json(_maybe({"items": ITEMS}), _maybe({}, items=st.lists(JUNK, max_size=3)))
DELETE_BODY = _json(_maybe({"ids": st.lists(IDS, max_size=4)}))
CREATE_BODY = _json(
    _maybe(
        {"name": _bounded_names(*COLLECTIONS, "fz-new-0", "fz-new-1")},
        dimension=DIMENSIONS,
        metric=METRICS,
        protection=PROTECTIONS,
    )
)
CKKS_CREATE_BODY = _json(_maybe({"name": _bounded_names(*COLLECTIONS)}))
ISSUE_BODY = _json(
    _maybe(
        {"role": st.sampled_from(["partner", "node", "admin", ""]), "name": OWNERS,
         "scopes": st.lists(st.one_of(_names(), st.just("*")), max_size=3)},
        top_k_cap=st.integers(-1, 2000), rate_per_minute=st.integers(-1, 2_000_000), burst=SMALL,
    )
)  # fmt: skip
STORE_SPEC_BODY = _json(
    _maybe(
        {"name": _bounded_names(DOCS, DCPE, "fz-store-0", "fz-store-1"), "dimension": DIMENSIONS,
         "metric": METRICS, "protection": PROTECTIONS},
        m=SMALL, ef_construction=SMALL, ef_search=SMALL,
    )
)  # fmt: skip
STORE_UPSERT_BODY = _json(
    st.tuples(st.lists(st.tuples(IDS, VECTORS), min_size=1, max_size=4), OWNERS).map(
        lambda t: {"ids": [i for i, _ in t[0]], "vectors": [v for _, v in t[0]], "owner": t[1]}
    ),
    _maybe(
        {"ids": st.lists(IDS, max_size=4), "vectors": st.lists(VECTORS, max_size=4)},
        owner=OWNERS,
        tags=st.one_of(st.none(), st.lists(TAGS, max_size=4)),
    ),
)
STORE_DELETE_BODY = _json(_maybe({"ids": st.lists(IDS, max_size=4), "owner": OWNERS}))
STORE_QUERY_BODY = _json(
    _maybe({"vectors": st.lists(VECTORS, min_size=1, max_size=3), "k": KS}, owner=OWNERS),
    _maybe(
        {"vectors": st.lists(VECTORS, max_size=3), "k": KS},
        owner=st.one_of(st.none(), OWNERS),
        tags=TAGS,
    ),
)
STORE_CKKS_CREATE_BODY = _json(
    _maybe(
        {"name": _bounded_names(SEALED), "dimension": DIMENSIONS,
         "evaluation_context": st.one_of(BASE64_JUNK, st.text(max_size=20))},
    )
)  # fmt: skip


def _mangled(valid: tuple[bytes, ...]) -> st.SearchStrategy[bytes]:
    """Valid binary bodies, cut short, with a flipped byte, or junk."""
    cut = st.tuples(st.sampled_from(valid), st.integers(0, 400)).map(lambda t: t[0][: t[1]])
    flipped = st.tuples(st.sampled_from(valid), st.integers(0, 10_000), st.integers(1, 255)).map(
        lambda t: (
            t[0][: t[1] % len(t[0])]
            + bytes([t[0][t[1] % len(t[0])] ^ t[2]])
            + t[0][t[1] % len(t[0]) + 1 :]
        )
    )
    return st.one_of(st.sampled_from(valid), cut, flipped, st.binary(max_size=200))


def _tokens(
    good: Sequence[str | None], others: Sequence[str | None]
) -> st.SearchStrategy[str | None]:
    """Mostly a key that may use the route (so the route is reached), else any other."""
    wrong = [*others, None, "", "garbage", "fek_000000000000_" + "x" * 43]
    good = list(good)
    return st.sampled_from(good * (1 + 8 * len(wrong) // len(good)) + wrong)  # 8 : 1


def _calls(
    route: Route,
    paths: dict[str, st.SearchStrategy[str]],
    tokens: st.SearchStrategy[str | None],
    body: st.SearchStrategy[bytes | None],
    params: st.SearchStrategy[dict[str, str] | None] = NO_PARAMS,
) -> st.SearchStrategy[Call]:
    return st.builds(
        Call,
        route=st.just(route),
        path=st.fixed_dictionaries({p: paths[p] for p in route.parameters}),
        token=tokens,
        scheme=SCHEMES,
        body=body,
        content_type=BINARY_TYPES if route in BINARY_ROUTES else JSON_TYPES,
        params=params,
    )


def _gateway_calls(fleet: Fleet, route: Route) -> st.SearchStrategy[Call]:
    t = fleet.tokens
    admin = [fleet.gateway.admin_token]
    partners, nodes = [t["partner"], t["partner-all"]], [t["node"], t["node-all"]]
    good: Sequence[str | None] = (
        admin if route in ADMIN_ROUTES
        else nodes if route in NODE_ROUTES
        else partners if route == routes.QUERY
        else [None] if route == routes.HEALTH
        else partners + nodes
    )  # fmt: skip
    others = [v for v in [*admin, *partners, *nodes, t["revoked"]] if v not in good]
    key_ids = st.one_of(
        st.sampled_from((*fleet.throwaway_key_ids, "000000000000")),
        st.text(max_size=20),
        st.just("a" * 10_000),
    )
    bodies = {
        routes.QUERY: QUERY_BODY,
        routes.UPSERT_DOCUMENTS: UPSERT_BODY,
        routes.DELETE_DOCUMENTS: DELETE_BODY,
        routes.PUT_BLOCK: _mangled(fleet.blocks),
        routes.CREATE_COLLECTION: CREATE_BODY,
        routes.CREATE_CKKS_COLLECTION: CKKS_CREATE_BODY,
        routes.ISSUE_CREDENTIAL: ISSUE_BODY,
    }
    paths = {"collection": _names(), "number": NUMBERS, "key_id": key_ids}
    return _calls(route, paths, _tokens(good, others), bodies.get(route, NO_BODY))


def _store_calls(fleet: Fleet, route: Route) -> st.SearchStrategy[Call]:
    good: Sequence[str | None] = [None] if route == routes.HEALTH else [fleet.store_token]
    others = [fleet.gateway.admin_token, fleet.tokens["node"]]
    bodies = {
        routes.STORE_CREATE: STORE_SPEC_BODY,
        routes.STORE_UPSERT: STORE_UPSERT_BODY,
        routes.STORE_DELETE: STORE_DELETE_BODY,
        routes.STORE_QUERY: STORE_QUERY_BODY,
        routes.STORE_CKKS_CREATE: STORE_CKKS_CREATE_BODY,
        routes.STORE_CKKS_PUT_BLOCK: _mangled(fleet.blocks),
        routes.STORE_CKKS_SCORE: _mangled((fleet.query_ciphertext,)),
    }
    params = st.one_of(st.none(), OWNERS.map(lambda owner: {"owner": owner}))
    paths = {"name": _names(), "owner": OWNERS, "number": NUMBERS}
    return _calls(route, paths, _tokens(good, others), bodies.get(route, NO_BODY), params)


def _post(route: Route, path: dict[str, str], token: str, document: Any) -> Call:
    return Call(route, path, token, body=json.dumps(document).encode(), content_type=JSON)


def _put(route: Route, path: dict[str, str], token: str, data: bytes) -> Call:
    return Call(route, path, token, body=data, content_type=OCTET_STREAM)


def _gateway_valid(fleet: Fleet) -> list[Call]:
    """One request per route that the gateway accepts (the CKKS create: a 409)."""
    t, a, v = fleet.tokens, fleet.gateway.admin_token, _unit(1, 5)[0].tolist()
    query = {"vector": v, "k": 5, "filters": {"owner": "node-a"}}
    issue = {"role": "partner", "name": "fz-p", "scopes": [DOCS]}
    docs, sealed = {"collection": DOCS}, {"collection": SEALED}
    return [
        Call(routes.HEALTH),
        Call(routes.LIST_COLLECTIONS, token=t["partner-all"]),
        Call(routes.DESCRIBE_COLLECTION, docs, t["partner"]),
        *(_post(routes.QUERY, {"collection": c}, t["partner"], query) for c in COLLECTIONS),
        _post(routes.UPSERT_DOCUMENTS, docs, t["node"], {"items": [{"id": "na-9", "vector": v}]}),
        _post(routes.DELETE_DOCUMENTS, docs, t["node"], {"ids": ["na-9"]}),
        Call(routes.CKKS_PUBLIC_CONTEXT, token=t["node"]),
        _put(routes.PUT_BLOCK, {**sealed, "number": "1"}, t["node"], fleet.blocks[0]),
        Call(routes.DELETE_BLOCK, {**sealed, "number": "7"}, t["node"]),
        _post(routes.CREATE_COLLECTION, {}, a, {"name": "fz-new-9", "dimension": DIM}),
        Call(routes.ADMIN_COLLECTIONS, token=a),
        Call(routes.SNAPSHOT, docs, a),
        _post(routes.CREATE_CKKS_COLLECTION, {}, a, {"name": SEALED}),
        _post(routes.ISSUE_CREDENTIAL, {}, a, issue),
        Call(routes.LIST_CREDENTIALS, token=a),
        Call(routes.REVOKE_CREDENTIAL, {"key_id": fleet.throwaway_key_ids[0]}, a),
        _post(routes.LOAD_ADAPTER, {}, a, ADAPTER_BODY),
        Call(routes.CURRENT_ADAPTER, token=a),
    ]


def _store_valid(fleet: Fleet) -> list[Call]:
    """One request per store route that the store accepts (the CKKS create: a 422)."""
    s, v = fleet.store_token, _unit(1, 6)[0].tolist()
    spec = {"name": "fz-store-9", "dimension": DIM, "metric": "cosine", "protection": "at-rest"}
    junk_context = {"name": "fz-ckks-9", "dimension": DIM, "evaluation_context": "AAAA"}
    docs, sealed = {"name": DOCS}, {"name": SEALED}
    block = {**sealed, "owner": "node-a"}
    return [
        Call(routes.HEALTH),
        Call(routes.STORE_LIST, token=s),
        _post(routes.STORE_CREATE, {}, s, spec),
        Call(routes.STORE_DESCRIBE, docs, s),
        _post(routes.STORE_UPSERT, docs, s, {"ids": ["na-8"], "vectors": [v], "owner": "node-a"}),
        _post(routes.STORE_DELETE, docs, s, {"ids": ["na-8"], "owner": "node-a"}),
        _post(routes.STORE_QUERY, docs, s, {"vectors": [v], "k": 3}),
        Call(routes.STORE_SNAPSHOT, docs, s),
        Call(routes.STORE_CKKS_LIST, token=s),
        _post(routes.STORE_CKKS_CREATE, {}, s, junk_context),
        Call(routes.STORE_CKKS_DESCRIBE, sealed, s),
        _put(routes.STORE_CKKS_PUT_BLOCK, {**block, "number": "2"}, s, fleet.blocks[1]),
        Call(routes.STORE_CKKS_DELETE_BLOCK, {**block, "number": "9"}, s),
        Call(
            routes.STORE_CKKS_SCORE, sealed, s, body=fleet.query_ciphertext,
            content_type=OCTET_STREAM, params={"owner": "node-a"},
        ),
    ]  # fmt: skip


def _fuzz(
    service: LocalIndexService,
    every: tuple[Route, ...],
    valid: list[Call],
    calls: Callable[[Route], st.SearchStrategy[Call]],
) -> tuple[Ledger, Ledger]:
    """The valid requests, then Hypothesis' requests for every route: their two ledgers."""
    checked, fuzzed = Ledger(), Ledger()
    with httpx.Client(base_url=service.url, timeout=120) as client:
        for call in valid:
            checked.send(client, call)
        for route in every:

            @SETTINGS
            @given(call=calls(route))
            def run(call: Call) -> None:
                fuzzed.send(client, call)

            run()
    errors = checked.server_errors + fuzzed.server_errors
    statuses = Counter(status for (_, status), n in fuzzed.statuses.items() for _ in range(n))
    print(f"fuzz {service.url}: {checked.sent} valid and {fuzzed.sent} generated requests, "
          f"{len(errors)} 5xx; generated: {dict(statuses)}")  # fmt: skip
    print("\n".join(error[:300] for error in errors[:20]))
    return checked, fuzzed


def test_the_gateway_never_answers_5xx_and_its_data_routes_are_reached(fleet: Fleet) -> None:
    # Execute
    checked, fuzzed = _fuzz(
        fleet.gateway,
        routes.GATEWAY_ROUTES,
        _gateway_valid(fleet),
        lambda r: _gateway_calls(fleet, r),
    )
    # Assert: no 5xx; every route answers; the generated requests get past the key checks
    assert checked.server_errors + fuzzed.server_errors == []
    assert {r for r in routes.GATEWAY_ROUTES if not checked.reached(r)} == NEVER_2XX & set(
        routes.GATEWAY_ROUTES
    )
    assert all(fuzzed.count(r) >= EXAMPLES // 2 for r in routes.GATEWAY_ROUTES)
    data = [routes.DESCRIBE_COLLECTION, routes.QUERY, routes.UPSERT_DOCUMENTS]
    assert [r for r in [*data, routes.DELETE_DOCUMENTS] if not fuzzed.reached(r)] == []


def test_the_store_never_answers_5xx_and_its_data_routes_are_reached(fleet: Fleet) -> None:
    # Execute
    checked, fuzzed = _fuzz(
        fleet.store, routes.STORE_ROUTES, _store_valid(fleet), lambda r: _store_calls(fleet, r)
    )
    # Assert
    assert checked.server_errors + fuzzed.server_errors == []
    assert {r for r in routes.STORE_ROUTES if not checked.reached(r)} == NEVER_2XX & set(
        routes.STORE_ROUTES
    )
    assert all(fuzzed.count(r) >= EXAMPLES // 2 for r in routes.STORE_ROUTES)
    data = [routes.STORE_DESCRIBE, routes.STORE_UPSERT, routes.STORE_DELETE, routes.STORE_QUERY]
    assert [r for r in data if not fuzzed.reached(r)] == []


# --- the schema's own cases (schemathesis), with the same in-scope keys -----------------


def _schemathesis(service: LocalIndexService, token_for: Callable[[Route], str]) -> int:
    """Every operation's generated cases against the live server; returns the cases sent.

    (schemathesis' pytest plugin does not run on pytest 9, so the operations' Hypothesis
    strategies are driven directly; the check is the same.)
    """
    schema = schemathesis.openapi.from_url(f"{service.url}/openapi.json")
    sent = 0
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]
        route = Route(operation.method.upper(), operation.path)
        if route != routes.CREATE_CKKS_COLLECTION:  # each new one holds 18 MB of keys
            sent += _run_operation(operation, {"Authorization": f"Bearer {token_for(route)}"})
    return sent


def _run_operation(operation: Any, headers: dict[str, str]) -> int:
    sent = 0

    @given(case=operation.as_strategy())
    @settings(SETTINGS, max_examples=SCHEMA_EXAMPLES)
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        case.call_and_validate(headers=headers, checks=[not_a_server_error])

    run()
    return sent


def test_the_schemas_own_cases_get_no_5xx(fleet: Fleet) -> None:
    t = fleet.tokens

    def gateway_token(route: Route) -> str:
        if route in ADMIN_ROUTES:
            return fleet.gateway.admin_token
        return t["node-all"] if route in NODE_ROUTES else t["partner-all"]

    sent = _schemathesis(fleet.gateway, gateway_token)
    sent += _schemathesis(fleet.store, lambda route: fleet.store_token)
    print(f"schemathesis: {sent} cases, no 5xx")
    assert sent >= 60


def test_the_schema_lists_every_client_error(fleet: Fleet) -> None:
    schema = httpx.get(f"{fleet.gateway.url}/openapi.json").json()
    query = schema["paths"][routes.QUERY.template][routes.QUERY.method.lower()]["responses"]
    assert {"401", "403", "404", "413", "422", "429"} <= set(query)
