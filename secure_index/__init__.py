"""Encrypted-at-rest vector index and the partner query endpoint.

- :mod:`secure_index.sealing`: AEAD, key-encryption keys, streaming sealed files, DCPE.
- :mod:`secure_index.storage`: atomic files and the encrypted write-ahead log.
- :mod:`secure_index.index`: hnswlib collections and the durable :class:`IndexStore`.
- :mod:`secure_index.service`: the query gateway and store HTTP services.
"""

from secure_index.index import CollectionSpec, Hit, IndexStore, Metric, Protection

__all__ = ["CollectionSpec", "Hit", "IndexStore", "Metric", "Protection"]
