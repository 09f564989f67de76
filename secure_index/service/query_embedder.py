"""The gateway's query side: embed partner text with the current model, protect vectors.

Text is embedded with the frozen encoder plus the federation's query-side adapter
(document vectors in the index stay valid when the adapter changes). For DCPE
collections the (normalised) query vector is encrypted with the tenant's DCPE key before
it leaves the gateway, so the store only ever compares ciphertexts.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np

from crypto.errors import KeyManagementError
from embedding_core.adapter import Adapter, AdapterSide
from embedding_core.encoder import Encoder
from index_client.vector_space import VectorSpace
from secure_index.errors import RequestError

__all__ = ["QueryEmbedder"]

logger = logging.getLogger(__name__)


class QueryEmbedder:
    """Turns a query (text or vector) into the vector the store searches with.

    Args:
        encoder: The frozen encoder, or ``None`` to refuse text queries.
        adapter: The released query-side adapter, if any.
        dcpe_key_file: The tenant's DCPE keyring, needed for DCPE collections.
    """

    def __init__(
        self,
        encoder: Encoder | None,
        *,
        adapter: Adapter | None = None,
        dcpe_key_file: Path | None = None,
    ) -> None:
        self._encoder = encoder
        self._adapter = adapter
        self._lock = threading.Lock()  # torch modules are not re-entrant across threads
        self._dcpe = None
        if dcpe_key_file is not None:
            from crypto.dcpe import ScaleAndPerturb
            from crypto.dcpe_keys import DcpeKeyring

            self._dcpe = ScaleAndPerturb(DcpeKeyring.load(dcpe_key_file).current())
        if adapter is not None and encoder is not None:
            adapter.check_base(encoder.fingerprint)

    @classmethod
    def load(
        cls,
        *,
        model_path: str | None,
        adapter_path: Path | None,
        dcpe_key_file: Path | None,
        text_queries: bool,
        encoder_backend: str | None = None,
    ) -> QueryEmbedder:
        """Load the model (if text queries are on), the adapter and the DCPE key.

        ``encoder_backend`` (``torch``, ``onnx``, ``onnx-int8``; None: the default) fixes
        the encoder space of text queries: collections of another space refuse them.
        """
        encoder = None
        if text_queries:
            encoder = (
                Encoder.load(model_path)
                if encoder_backend is None
                else Encoder.load(model_path, backend=encoder_backend)
            )
        adapter = Adapter.load(adapter_path) if adapter_path is not None else None
        if adapter is not None and adapter.side is not AdapterSide.QUERY:
            raise RequestError(
                f"the adapter at {adapter_path} transforms documents too (side={adapter.side})",
                expected="a query-side adapter (documents in the index do not change)",
                fix="release a query-side adapter, or re-upload documents through it",
            )
        return cls(encoder, adapter=adapter, dcpe_key_file=dcpe_key_file)

    @property
    def adapter(self) -> Adapter | None:
        """The query-side adapter in use (None: the encoder alone)."""
        with self._lock:
            return self._adapter

    def swap_adapter(self, adapter: Adapter | None) -> Adapter | None:
        """Use ``adapter`` (None: the encoder alone) from the next query on.

        Returns the adapter it replaces.

        A query in flight finishes with the adapter it started with: embedding and the
        swap take the same lock, so no query ever mixes two adapters.

        Raises:
            RequestError: This gateway does not embed text, or ``adapter`` is not a
                query-side adapter for this encoder (its width or base model differ).
        """
        if adapter is None:
            with self._lock:
                previous, self._adapter = self._adapter, None
            return previous
        if self._encoder is None:
            raise RequestError(
                "this gateway does not embed text, so it uses no adapter",
                expected="a gateway started with text queries on",
                fix="start the gateway without --no-text-queries",
            )
        if adapter.side is not AdapterSide.QUERY:
            raise RequestError(
                f"the adapter transforms documents too (side={adapter.side})",
                expected="a query-side adapter (documents in the index do not change)",
                fix="release a query-side adapter",
            )
        if adapter.in_dim != self._encoder.dimension or adapter.out_dim != adapter.in_dim:
            raise RequestError(
                f"the adapter maps width {adapter.in_dim} to {adapter.out_dim}",
                expected=f"width {self._encoder.dimension} in and out (the gateway encoder's "
                "and the indexed documents')",
                fix="promote an adapter trained on the gateway's base model",
            )
        adapter.check_base(self._encoder.fingerprint)
        with self._lock:
            previous, self._adapter = self._adapter, adapter
        logger.info("swap_adapter: kind=%s", adapter.kind.value)
        return previous

    @property
    def vector_space(self) -> VectorSpace | None:
        """The encoder space text queries are embedded in (None without text queries)."""
        return VectorSpace.of(self._encoder) if self._encoder is not None else None

    @property
    def model_fingerprint(self) -> str | None:
        """The encoder's fingerprint (None without text queries)."""
        return self._encoder.fingerprint if self._encoder is not None else None

    def embed_text(self, text: str) -> np.ndarray:
        """The (1, d) query vector of ``text`` (adapter applied)."""
        if self._encoder is None:
            raise RequestError(
                "this gateway does not embed text",
                expected="a query vector",
                fix="send 'vector' instead of 'text', or ask the operator to enable text queries",
            )
        with self._lock:
            vector = self._encoder.encode([text])
            if self._adapter is not None:
                vector = self._adapter.transform(vector)
        return vector

    def protect(self, vectors: np.ndarray, *, dcpe: bool) -> np.ndarray:
        """Normalise query vectors and, for DCPE collections, encrypt them."""
        array = np.asarray(vectors, dtype=np.float32).reshape(-1, vectors.shape[-1])
        norms = np.linalg.norm(array, axis=1, keepdims=True)
        if not np.isfinite(array).all() or (norms == 0).any():
            raise RequestError(
                "the query vector is zero or not finite",
                expected="a non-zero vector of finite numbers",
                fix="embed the query with the collection's model",
            )
        array = np.asarray(array / norms, dtype=np.float32)
        if not dcpe:
            return array
        if self._dcpe is None:
            raise KeyManagementError(
                "this collection is DCPE-encrypted but the gateway has no DCPE key",
                expected="FEDEMBED_INDEX_DCPE_KEY_FILE pointing to the tenant's DCPE keyring",
                fix="start the gateway with the DCPE keyring the nodes encrypt with",
            )
        return np.asarray(self._dcpe.encrypt_queries(array), dtype=np.float32)
