"""One rule for the encoder space of a collection: vectors of two spaces never mix.

A collection records the :class:`~index_client.vector_space.VectorSpace` of its vectors
in its :class:`~secure_index.index.collection_spec.CollectionSpec`. The first upload
that names a space records it (durably, in the same log record as its vectors); from
then on the index refuses uploads of another space, and the gateway refuses text queries
embedded in another space (:class:`~secure_index.errors.VectorSpaceError`, HTTP 409).

CKKS collections record the space of each block in their manifest (a block replaced by
its owner must still match the other blocks).

A collection holding vectors but no recorded space was filled before spaces were
recorded: it is the ``torch`` space of the same model
(:data:`~index_client.vector_space.LEGACY_BACKEND`). An upload that names no space comes
from such a client and counts as ``torch`` too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from index_client.vector_space import (
    LEGACY_BACKEND,
    SPACE_FIELDS,
    VectorSpace,
    VectorSpaceFormatError,
)
from secure_index.errors import RequestError, VectorSpaceError
from secure_index.index.collection_spec import CollectionSpec

__all__ = [
    "check_query_in",
    "check_query_space",
    "check_upload_space",
    "check_vectors_join",
    "parse_space",
    "with_space",
]

_LEGACY = "vectors uploaded before encoder spaces were recorded (the torch space of its model)"


def parse_space(values: Mapping[str, object]) -> VectorSpace | None:
    """The space a request body names in its :data:`SPACE_FIELDS` (None: it names none).

    Raises:
        RequestError: Only some of the three are given, or one is malformed (422).
    """
    try:
        return VectorSpace.from_fields(values)
    except VectorSpaceFormatError as exc:
        raise RequestError(
            f"the upload's encoder space is malformed: {exc}",
            expected=f"all of {', '.join(SPACE_FIELDS)} (from the encoder), or none",
            fix="send the uploading encoder's space, backend and fingerprint together",
        ) from None


def with_space(spec: CollectionSpec, space: VectorSpace) -> CollectionSpec:
    """``spec`` with ``space`` recorded."""
    return dataclasses.replace(
        spec,
        space=space.space,
        encoder_backend=space.encoder_backend,
        model_fingerprint=space.model_fingerprint,
    )


def _held(recorded: VectorSpace | None) -> str:
    return recorded.describe() if recorded is not None else _LEGACY


def check_upload_space(
    spec: CollectionSpec, incoming: VectorSpace | None, *, populated: bool
) -> VectorSpace | None:
    """Check that an upload's vectors may join the collection; returns what to record.

    Args:
        spec: The collection (its recorded space, if any).
        incoming: The upload's space (None: an older client, the torch space).
        populated: Whether the collection holds documents now.

    Returns:
        The space to record with this upload (None: nothing new to record).

    Raises:
        VectorSpaceError: The upload's vectors are of another space than the collection's.
    """
    return check_vectors_join(spec.name, spec.vector_space, incoming, populated=populated)


def check_vectors_join(
    name: str, recorded: VectorSpace | None, incoming: VectorSpace | None, *, populated: bool
) -> VectorSpace | None:
    """:func:`check_upload_space` for collection ``name`` holding ``recorded`` vectors.

    CKKS collections record a space per block: ``recorded`` is their blocks' (the other
    blocks' when one is replaced), ``populated`` whether there are such blocks.
    """
    if recorded is None:
        if incoming is None:
            return None
        if not populated or incoming.encoder_backend == LEGACY_BACKEND:
            return incoming
    elif incoming is None:
        if recorded.encoder_backend == LEGACY_BACKEND:
            return None
    elif incoming.space == recorded.space:
        return None
    shown = incoming.describe() if incoming is not None else "vectors that name no encoder space"
    backend = recorded.encoder_backend if recorded is not None else LEGACY_BACKEND
    raise VectorSpaceError(
        f"collection {name!r} holds {_held(recorded)}; this upload holds {shown}",
        expected=f"vectors of the collection's space: encoder backend {backend} and its model",
        fix=f"upload with --encoder-backend {backend}, or upload these vectors to a new "
        "collection (with every node's documents re-uploaded there): vectors of two encoder "
        "spaces are not comparable",
    )


def check_query_space(spec: CollectionSpec, embedder: VectorSpace, *, populated: bool) -> None:
    """Check that a text query embedded in ``embedder``'s space may search the collection.

    Raises:
        VectorSpaceError: The gateway's encoder makes vectors of another space than the
            collection holds (its answers would be silently worse).
    """
    check_query_in(spec.name, spec.vector_space, embedder, populated=populated)


def check_query_in(
    name: str, recorded: VectorSpace | None, embedder: VectorSpace, *, populated: bool
) -> None:
    """:func:`check_query_space` for collection ``name`` holding ``recorded`` vectors."""
    if recorded is None:
        if not populated or embedder.encoder_backend == LEGACY_BACKEND:
            return
    elif recorded.space == embedder.space:
        return
    backend = recorded.encoder_backend if recorded is not None else LEGACY_BACKEND
    raise VectorSpaceError(
        f"collection {name!r} holds {_held(recorded)}; this gateway embeds text as "
        f"{embedder.describe()}",
        expected=f"a gateway encoder of the collection's space: encoder backend {backend} "
        "and its model",
        fix=f"ask the operator to run a gateway with FEDEMBED_INDEX_ENCODER_BACKEND={backend} "
        "(`fedembed index serve --encoder-backend`) for this collection, or send a 'vector' "
        "embedded in the collection's space",
    )
