"""Encrypted-at-rest vector index and the partner query endpoint.

- :mod:`secure_index.atomic_file`: crash-safe whole-file writes with operator advice.
- :mod:`secure_index.sealing`: AEAD, key-encryption keys, streaming sealed files.
- :mod:`secure_index.storage`: the encrypted write-ahead log.
- :mod:`secure_index.index`: hnswlib collections and the durable :class:`IndexStore`.
- :mod:`secure_index.service`: the query gateway and store HTTP services.
"""
