"""The query gateway's CKKS search: encrypt the query, let the store score, decrypt, rank.

The gateway holds the CKKS secret key (:class:`~crypto.ckks_search_key.CkksSearchKey`,
``FEDEMBED_INDEX_CKKS_KEY_FILE``). It gives the store the evaluation keys when an admin
creates a CKKS collection, gives nodes the public context, forwards nodes' encrypted
blocks, and answers partner queries: the store returns one encrypted score vector per
block, the gateway decrypts them and returns the top ``k`` ids, owners and scores. The
store never holds a key that decrypts anything. The routes are in
:mod:`secure_index.service.gateway_ckks_routes`.
"""

import logging

import numpy as np

from crypto.ckks_search_key import CkksSearchKey
from secure_index.index.ckks_collections import METRIC, CkksCollectionInfo
from secure_index.index.collection_spec import Hit
from secure_index.service.ckks_backend import CkksBackend
from secure_index.service.schemas import CollectionInfo

__all__ = ["PROTECTION", "CkksGatewaySearch", "ckks_collection_info"]

logger = logging.getLogger(__name__)

PROTECTION = "ckks"


class CkksGatewaySearch:
    """The gateway's side of CKKS collections.

    Args:
        key: The gateway's CKKS secret key.
        backend: The store's CKKS collections (in-process or remote).
    """

    def __init__(self, key: CkksSearchKey, backend: CkksBackend) -> None:
        self.key = key
        self.backend = backend
        self._public = key.public_context()

    @property
    def public_context(self) -> bytes:
        """What nodes encrypt with."""
        return self._public

    def has(self, name: str) -> bool:
        """Whether ``name`` is a CKKS collection."""
        return name in self.backend.names()

    def search(
        self, name: str, vector: np.ndarray, k: int, *, owner: str | None = None
    ) -> list[Hit]:
        """The ``k`` best documents for one unit query vector, scored under encryption."""
        query = self.key.encrypt_query(np.asarray(vector, dtype=np.float64).reshape(-1))
        blocks = self.backend.score(name, query, owner=owner)
        if not blocks:
            return []
        scores = self.key.decrypt_scores([b.answer for b in blocks], [len(b.ids) for b in blocks])
        ids = [doc_id for b in blocks for doc_id in b.ids]
        owners = [b.owner for b in blocks for _ in b.ids]
        best = np.argsort(-scores, kind="stable")[:k]
        logger.info(
            "ckks-search: %s: ranked %d documents in %d blocks", name, len(ids), len(blocks)
        )
        return [Hit.of(ids[i], owners[i], float(scores[i])) for i in best]


def ckks_collection_info(info: CkksCollectionInfo) -> CollectionInfo:
    """A CKKS collection in the gateway's collection answer (protection ``ckks``)."""
    return CollectionInfo(
        name=info.name,
        dimension=info.dimension,
        metric=METRIC,
        protection=PROTECTION,
        documents=info.documents,
        generation=0,
        last_seq=0,
        folded_seq=0,
        space=info.space,
        encoder_backend=info.encoder_backend,
        model_fingerprint=info.model_fingerprint,
    )
