"""What the gateway needs from an index store, in-process or over HTTP.

:class:`secure_index.index.IndexStore` satisfies :class:`StoreBackend` directly (one
process, role ``all``); :class:`RemoteStore` satisfies it over the store's internal HTTP
API (role ``gateway``), so the process that holds the index can run on an untrusted host
and, for DCPE collections, never sees a plaintext vector. Its routes are those of
:mod:`index_client.routes` (``STORE_*``), sent by an
:class:`~index_client.transport.ServiceTransport`; the store's refusals become the
index's own errors, which the gateway answers with the same status.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from embedding_core.errors import FedembedError
from index_client import routes
from index_client.errors import GatewayError
from index_client.routes import Route
from index_client.transport import ServiceTransport, TlsTrustError, TlsVerify
from index_client.vector_space import SPACE_FIELDS, VectorSpace
from secure_index.errors import (
    CollectionExistsError,
    CollectionNotFoundError,
    OwnershipError,
    RequestError,
    StorageError,
)
from secure_index.index.collection_spec import CollectionSpec, Hit, Metric, Protection
from secure_index.index.index_store import CollectionStats, UpsertResult

__all__ = ["RemoteStore", "StoreBackend", "call_store", "store_error"]

logger = logging.getLogger(__name__)


class StoreBackend(Protocol):
    """The index operations the gateway uses."""

    def create_collection(self, spec: CollectionSpec) -> CollectionStats:
        """Create and persist an empty collection."""
        ...

    def names(self) -> list[str]:
        """The collections."""
        ...

    def spec(self, name: str) -> CollectionSpec:
        """A collection's parameters."""
        ...

    def stats(self, name: str) -> CollectionStats:
        """A collection's sizes and log positions."""
        ...

    def upsert(
        self,
        name: str,
        doc_ids: Sequence[str],
        vectors: object,
        *,
        owner: str,
        tags: Sequence[Sequence[str]] | None = None,
        space: VectorSpace | None = None,
    ) -> UpsertResult:
        """Insert or replace documents of ``owner`` (vectors of encoder ``space``); durable."""
        ...

    def delete(self, name: str, doc_ids: Sequence[str], *, owner: str) -> int:
        """Delete documents of ``owner``; returns how many."""
        ...

    def knn_query(
        self,
        name: str,
        vectors: object,
        k: int,
        *,
        owner: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[list[Hit]]:
        """The ``k`` nearest documents per query vector."""
        ...

    def snapshot(self, name: str) -> int:
        """Fold the log into a new generation; returns it."""
        ...


_BY_STATUS: dict[int, type[FedembedError]] = {
    404: CollectionNotFoundError,
    409: CollectionExistsError,
    403: OwnershipError,
    422: RequestError,
    413: RequestError,
}


def store_error(exc: GatewayError) -> FedembedError:
    """The user-facing error of a store's refusal (its problem, expected and fix)."""
    if isinstance(exc, TlsTrustError):
        return StorageError(
            f"index store: {exc.problem}",
            expected=exc.expected,
            fix="set FEDEMBED_INDEX_STORE_CA to the CA certificate that signed the store's, "
            "give the store a certificate for the host in FEDEMBED_INDEX_STORE_URL, and "
            "check that URL's scheme and port",
        )
    if exc.status == 0:
        return StorageError(
            exc.problem,
            expected="a running `fedembed index serve --role store`",
            fix="start the store or correct FEDEMBED_INDEX_STORE_URL",
        )
    kind = _BY_STATUS.get(exc.status)
    if kind is None:
        return StorageError(f"index store: {exc.problem}", expected=exc.expected, fix=exc.fix)
    return kind(exc.problem, expected=exc.expected, fix=exc.fix)


def _document(document: Any) -> Any:
    return document


def call_store(transport: ServiceTransport, route: Route, **kwargs: Any) -> Any:
    """One call to the store's internal API: its JSON answer, or the user-facing error."""
    try:
        return transport.call(route, _document, **kwargs)
    except GatewayError as exc:
        raise store_error(exc) from None


def _numeric(vectors: object) -> np.ndarray:
    """``vectors`` as float32, refused as the index refuses them (JSON has no NaN or inf)."""
    try:
        with np.errstate(over="ignore"):  # beyond float32: inf, refused below
            array = np.asarray(vectors, dtype=np.float32)
        numeric = array.ndim > 0 and bool(np.isfinite(array).all())
    except (TypeError, ValueError):  # rows of unequal length, not numbers
        numeric = False
    if not numeric:
        raise RequestError(
            "vectors are not rows of finite numbers",
            expected="one row of finite float32 numbers (|x| < 3.4e38) per document or query",
            fix="re-embed with the collection's model",
        )
    return array


def spec_from_dict(raw: dict[str, Any]) -> CollectionSpec:
    """A :class:`CollectionSpec` from its JSON form."""
    return CollectionSpec(
        name=str(raw["name"]),
        dimension=int(raw["dimension"]),
        metric=Metric(raw["metric"]),
        protection=Protection(raw["protection"]),
        m=int(raw.get("m", 16)),
        ef_construction=int(raw.get("ef_construction", 200)),
        ef_search=int(raw.get("ef_search", 100)),
        **{k: str(raw[k]) for k in SPACE_FIELDS if raw.get(k) is not None},
    )


def spec_to_dict(spec: CollectionSpec) -> dict[str, Any]:
    """The JSON form of a :class:`CollectionSpec`."""
    return {
        "name": spec.name,
        "dimension": spec.dimension,
        "metric": str(spec.metric),
        "protection": str(spec.protection),
        "m": spec.m,
        "ef_construction": spec.ef_construction,
        "ef_search": spec.ef_search,
        **{k: getattr(spec, k) for k in SPACE_FIELDS if getattr(spec, k) is not None},
    }


class RemoteStore:
    """:class:`StoreBackend` over the store's internal HTTP API.

    Args:
        url: Base URL of the store service.
        token: Bearer token shared by gateway and store.
        timeout_s: Per-request timeout.
        verify: TLS trust: the store's CA certificate file, an ``ssl.SSLContext``, or True
            (the system trust store).
    """

    def __init__(
        self, url: str, *, token: str, timeout_s: float = 30.0, verify: TlsVerify = True
    ) -> None:
        self._transport = ServiceTransport(url, token, timeout_s=timeout_s, verify=verify)

    def _call(self, route: Route, name: str | None = None, body: Any = None) -> Any:
        path = {"name": name} if name is not None else None
        return call_store(self._transport, route, path=path, json=body)

    @property
    def transport(self) -> ServiceTransport:
        """The connection (base URL and token), shared with the CKKS client."""
        return self._transport

    def create_collection(self, spec: CollectionSpec) -> CollectionStats:
        """Create a collection on the store."""
        return CollectionStats(**self._call(routes.STORE_CREATE, body=spec_to_dict(spec)))

    def names(self) -> list[str]:
        """The store's collections."""
        return [str(n) for n in self._call(routes.STORE_LIST)["names"]]

    def spec(self, name: str) -> CollectionSpec:
        """A collection's parameters."""
        return spec_from_dict(self._call(routes.STORE_DESCRIBE, name)["spec"])

    def stats(self, name: str) -> CollectionStats:
        """A collection's sizes."""
        return CollectionStats(**self._call(routes.STORE_DESCRIBE, name)["stats"])

    def upsert(
        self,
        name: str,
        doc_ids: Sequence[str],
        vectors: object,
        *,
        owner: str,
        tags: Sequence[Sequence[str]] | None = None,
        space: VectorSpace | None = None,
    ) -> UpsertResult:
        """Durable upsert on the store."""
        body = {
            "ids": list(doc_ids),
            "vectors": _numeric(vectors).tolist(),
            "owner": owner,
            "tags": [list(t) for t in tags] if tags is not None else None,
            **(space.as_fields() if space is not None else {}),
        }
        return UpsertResult(**self._call(routes.STORE_UPSERT, name, body))

    def delete(self, name: str, doc_ids: Sequence[str], *, owner: str) -> int:
        """Durable delete on the store."""
        body = {"ids": list(doc_ids), "owner": owner}
        return int(self._call(routes.STORE_DELETE, name, body)["deleted"])

    def knn_query(
        self,
        name: str,
        vectors: object,
        k: int,
        *,
        owner: str | None = None,
        tags: Sequence[str] = (),
    ) -> list[list[Hit]]:
        """Nearest documents from the store."""
        array = _numeric(vectors)
        body = {
            "vectors": array.reshape(-1, array.shape[-1]).tolist(),
            "k": k,
            "owner": owner,
            "tags": list(tags),
        }
        rows = self._call(routes.STORE_QUERY, name, body)["results"]
        return [[Hit.of(**hit) for hit in row] for row in rows]

    def snapshot(self, name: str) -> int:
        """Fold the store's log into a new generation."""
        return int(self._call(routes.STORE_SNAPSHOT, name)["generation"])

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._transport.close()
