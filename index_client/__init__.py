"""The clients of the query gateway and the index store, and their shared wire format.

A shared room: nodes (uploads), the demo, benchmarks and the gateway itself (its routes,
its block format) use it; it imports only the kernel, ``crypto`` and third-party
packages, never a component.

- :mod:`index_client.routes`: every route of the gateway and the store, defined once;
- :mod:`index_client.block_format`: the binary body of a CKKS block upload;
- :mod:`index_client.names`: the one rule for collection, node and partner names
  (every name that reaches a path, a URL or a folder);
- :class:`GatewayClient` (partner and node keys) and :class:`AdminClient` (the
  operator's admin token): typed verbs over httpx;
- :mod:`index_client.vector_space`: the encoder space an upload, a collection or the
  gateway's text queries are of (vectors of two spaces never mix);
- :mod:`index_client.errors`: a refusal is a :class:`GatewayError` subclass carrying
  the service's problem, expected and fix.
"""

from index_client import names, routes
from index_client.admin_client import AdminClient, ServedAdapter
from index_client.answers import (
    ApiKey,
    CkksCollection,
    Collection,
    IssuedKey,
    SearchHit,
    SearchResult,
    UploadReceipt,
)
from index_client.block_format import (
    OCTET_STREAM,
    BlockFormatError,
    pack_block_upload,
    unpack_block_upload,
)
from index_client.errors import (
    AuthenticationError,
    ConflictError,
    GatewayError,
    GatewayUnavailableError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
    RequestRejectedError,
    UnexpectedAnswerError,
)
from index_client.gateway_client import GatewayClient
from index_client.names import InvalidNameError, check_name, name_problem
from index_client.routes import Route
from index_client.transport import TlsTrustError
from index_client.vector_space import LEGACY_BACKEND, VectorSpace

__all__ = [
    "LEGACY_BACKEND",
    "OCTET_STREAM",
    "AdminClient",
    "ApiKey",
    "AuthenticationError",
    "BlockFormatError",
    "CkksCollection",
    "Collection",
    "ConflictError",
    "GatewayClient",
    "GatewayError",
    "GatewayUnavailableError",
    "InvalidNameError",
    "IssuedKey",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitedError",
    "RequestRejectedError",
    "Route",
    "SearchHit",
    "SearchResult",
    "ServedAdapter",
    "TlsTrustError",
    "UnexpectedAnswerError",
    "UploadReceipt",
    "VectorSpace",
    "check_name",
    "name_problem",
    "names",
    "pack_block_upload",
    "routes",
    "unpack_block_upload",
]
