"""Every route of the query gateway and of the index store's internal API, defined once.

The gateway's and the store's FastAPI routers are declared with these :class:`Route`
objects and the clients build their URLs from them, so the two sides cannot drift apart.

Gateway (``fedembed index serve``, roles ``all`` and ``gateway``):

* partners and nodes (their API key): :data:`LIST_COLLECTIONS`, :data:`DESCRIBE_COLLECTION`,
  :data:`QUERY` (partners), :data:`UPSERT_DOCUMENTS` and :data:`DELETE_DOCUMENTS` (nodes);
* CKKS (nodes, when the gateway holds a CKKS key): :data:`CKKS_PUBLIC_CONTEXT`,
  :data:`PUT_BLOCK` (binary body, :func:`index_client.block_format.pack_block_upload`),
  :data:`DELETE_BLOCK`;
* the operator (admin token): :data:`CREATE_COLLECTION`, :data:`ADMIN_COLLECTIONS`,
  :data:`SNAPSHOT`, :data:`CREATE_CKKS_COLLECTION`, :data:`ISSUE_CREDENTIAL`,
  :data:`LIST_CREDENTIALS`, :data:`REVOKE_CREDENTIAL`, :data:`LOAD_ADAPTER` and
  :data:`CURRENT_ADAPTER` (the released query-side adapter, swapped without a restart).

Store (role ``store``; only the gateway calls it, with the store token): the ``STORE_*``
routes (at-rest and DCPE collections) and the ``STORE_CKKS_*`` routes (CKKS collections).
Both services answer :data:`HEALTH` without a key.

:meth:`Route.path` percent-encodes every value as one path segment and refuses, before
it builds anything, a collection or node name that breaks
:data:`index_client.names.NAME_RULE` (parameters ``collection``, ``name``, ``owner``),
a block number that is not a non-negative integer, and an empty, ``.`` or ``..`` value
of any other parameter: no value can add, remove or climb a segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

from index_client.names import COLLECTION, NODE, InvalidNameError, check_name, shown

__all__ = [
    "ADMIN_COLLECTIONS",
    "CKKS_PUBLIC_CONTEXT",
    "CREATE_CKKS_COLLECTION",
    "CREATE_COLLECTION",
    "CURRENT_ADAPTER",
    "DELETE_BLOCK",
    "DELETE_DOCUMENTS",
    "DESCRIBE_COLLECTION",
    "GATEWAY_ROUTES",
    "HEALTH",
    "ISSUE_CREDENTIAL",
    "LIST_COLLECTIONS",
    "LIST_CREDENTIALS",
    "LOAD_ADAPTER",
    "PUT_BLOCK",
    "QUERY",
    "REVOKE_CREDENTIAL",
    "SNAPSHOT",
    "STORE_CKKS_CREATE",
    "STORE_CKKS_DELETE_BLOCK",
    "STORE_CKKS_DESCRIBE",
    "STORE_CKKS_LIST",
    "STORE_CKKS_PUT_BLOCK",
    "STORE_CKKS_ROUTES",
    "STORE_CKKS_SCORE",
    "STORE_CREATE",
    "STORE_DELETE",
    "STORE_DESCRIBE",
    "STORE_LIST",
    "STORE_QUERY",
    "STORE_ROUTES",
    "STORE_SNAPSHOT",
    "STORE_UPSERT",
    "UPSERT_DOCUMENTS",
    "Route",
    "paths_pattern",
]

_PARAMETER = re.compile(r"\{([a-z_]+)\}")
_NAMES = {"collection": COLLECTION, "name": COLLECTION, "owner": NODE}
_NUMBERS = {"number"}


def _segment(parameter: str, value: str | int) -> str:
    """``value`` checked for ``parameter`` and percent-encoded as one path segment."""
    if parameter in _NAMES:
        text = check_name(value, _NAMES[parameter])
    elif parameter in _NUMBERS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidNameError(
                f"{parameter} {shown(value)} is not a block number",
                expected="an integer >= 0",
                fix="number a node's blocks from 0",
            )
        text = str(value)
    else:
        text = str(value)
        if text in {"", ".", ".."}:
            raise InvalidNameError(
                f"{parameter} {text!r} is not a path segment",
                expected=f"a {parameter} (not empty, '.' or '..')",
                fix=f"pass the {parameter} the service gave you",
            )
    return quote(text, safe="")


@dataclass(frozen=True)
class Route:
    """One HTTP route: its method and its path template (``{name}`` parameters).

    Args:
        method: The HTTP method in capitals.
        template: The path, with parameters in braces as FastAPI writes them.
    """

    method: str
    template: str

    @property
    def parameters(self) -> tuple[str, ...]:
        """The names of the path parameters, in order."""
        return tuple(_PARAMETER.findall(self.template))

    def path(self, **values: str | int) -> str:
        """The concrete path, each value checked and percent-encoded as one path segment.

        Raises:
            ValueError: When a parameter is missing or an unknown one is given.
            InvalidNameError: When a collection or node name breaks
                :data:`~index_client.names.NAME_RULE`, a block number is not an integer
                >= 0, or another value is empty, ``.`` or ``..`` (nothing is sent).
        """
        if set(values) != set(self.parameters):
            raise ValueError(
                f"{self.method} {self.template} takes {sorted(self.parameters)}, "
                f"got {sorted(values)}"
            )
        segments = {name: _segment(name, value) for name, value in values.items()}
        return _PARAMETER.sub(lambda m: segments[m.group(1)], self.template)

    @property
    def pattern(self) -> str:
        """A regular expression that fully matches the route's concrete paths."""
        parts = _PARAMETER.split(self.template)
        # split() alternates literal text and parameter names: escape the text only
        return "".join("[^/]+" if i % 2 else re.escape(part) for i, part in enumerate(parts))


def paths_pattern(*routes: Route) -> str:
    """One regular expression matching the concrete paths of any of ``routes``."""
    return "|".join(f"(?:{r.pattern})" for r in routes)


HEALTH = Route("GET", "/healthz")

# --- gateway: partners and nodes ------------------------------------------------------
_COLLECTIONS = "/v1/collections"
_COLLECTION = _COLLECTIONS + "/{collection}"
_DOCUMENTS = _COLLECTION + "/documents"
_BLOCK = _COLLECTION + "/blocks/{number}"

LIST_COLLECTIONS = Route("GET", _COLLECTIONS)
DESCRIBE_COLLECTION = Route("GET", _COLLECTION)
QUERY = Route("POST", _COLLECTION + "/query")
UPSERT_DOCUMENTS = Route("PUT", _DOCUMENTS)
DELETE_DOCUMENTS = Route("POST", _DOCUMENTS + "/delete")
CKKS_PUBLIC_CONTEXT = Route("GET", "/v1/ckks/public-context")
PUT_BLOCK = Route("PUT", _BLOCK)
DELETE_BLOCK = Route("DELETE", _BLOCK)

# --- gateway: the operator --------------------------------------------------------------
_ADMIN = "/v1/admin"
_ADMIN_COLLECTIONS = _ADMIN + "/collections"
_CREDENTIALS = _ADMIN + "/credentials"

CREATE_COLLECTION = Route("POST", _ADMIN_COLLECTIONS)
ADMIN_COLLECTIONS = Route("GET", _ADMIN_COLLECTIONS)
SNAPSHOT = Route("POST", _ADMIN_COLLECTIONS + "/{collection}/snapshot")
CREATE_CKKS_COLLECTION = Route("POST", _ADMIN + "/ckks-collections")
ISSUE_CREDENTIAL = Route("POST", _CREDENTIALS)
LIST_CREDENTIALS = Route("GET", _CREDENTIALS)
REVOKE_CREDENTIAL = Route("DELETE", _CREDENTIALS + "/{key_id}")
LOAD_ADAPTER = Route("PUT", _ADMIN + "/adapter")
CURRENT_ADAPTER = Route("GET", _ADMIN + "/adapter")

# --- store: at-rest and DCPE collections (only the gateway calls) -----------------------
_STORE = "/internal/v1/collections"
_STORE_ONE = _STORE + "/{name}"

STORE_LIST = Route("GET", _STORE)
STORE_CREATE = Route("POST", _STORE)
STORE_DESCRIBE = Route("GET", _STORE_ONE)
STORE_UPSERT = Route("POST", _STORE_ONE + "/upsert")
STORE_DELETE = Route("POST", _STORE_ONE + "/delete")
STORE_QUERY = Route("POST", _STORE_ONE + "/query")
STORE_SNAPSHOT = Route("POST", _STORE_ONE + "/snapshot")

# --- store: CKKS collections ------------------------------------------------------------
_STORE_CKKS = "/internal/v1/ckks"
_STORE_CKKS_ONE = _STORE_CKKS + "/{name}"
_STORE_CKKS_BLOCK = _STORE_CKKS_ONE + "/blocks/{owner}/{number}"

STORE_CKKS_LIST = Route("GET", _STORE_CKKS)
STORE_CKKS_CREATE = Route("POST", _STORE_CKKS)
STORE_CKKS_DESCRIBE = Route("GET", _STORE_CKKS_ONE)
STORE_CKKS_PUT_BLOCK = Route("PUT", _STORE_CKKS_BLOCK)
STORE_CKKS_DELETE_BLOCK = Route("DELETE", _STORE_CKKS_BLOCK)
STORE_CKKS_SCORE = Route("POST", _STORE_CKKS_ONE + "/score")

GATEWAY_ROUTES: tuple[Route, ...] = (
    HEALTH,
    LIST_COLLECTIONS,
    DESCRIBE_COLLECTION,
    QUERY,
    UPSERT_DOCUMENTS,
    DELETE_DOCUMENTS,
    CKKS_PUBLIC_CONTEXT,
    PUT_BLOCK,
    DELETE_BLOCK,
    CREATE_COLLECTION,
    ADMIN_COLLECTIONS,
    SNAPSHOT,
    CREATE_CKKS_COLLECTION,
    ISSUE_CREDENTIAL,
    LIST_CREDENTIALS,
    REVOKE_CREDENTIAL,
    LOAD_ADAPTER,
    CURRENT_ADAPTER,
)
"""Every gateway route (the CKKS ones exist when the gateway holds a CKKS key)."""

STORE_CKKS_ROUTES: tuple[Route, ...] = (
    STORE_CKKS_LIST,
    STORE_CKKS_CREATE,
    STORE_CKKS_DESCRIBE,
    STORE_CKKS_PUT_BLOCK,
    STORE_CKKS_DELETE_BLOCK,
    STORE_CKKS_SCORE,
)
"""The store's CKKS routes."""

STORE_ROUTES: tuple[Route, ...] = (
    HEALTH,
    STORE_LIST,
    STORE_CREATE,
    STORE_DESCRIBE,
    STORE_UPSERT,
    STORE_DELETE,
    STORE_QUERY,
    STORE_SNAPSHOT,
    *STORE_CKKS_ROUTES,
)
"""Every store route."""
