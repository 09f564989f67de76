"""The vector space of an upload, a collection or a query embedder, on the wire.

Vectors of one model made by different encoder backends (``torch``, ``onnx``,
``onnx-int8``) are not interchangeable: int8 vectors are only cosine 0.94-0.96 to the
fp32 ones. So every party that stores or compares vectors names their space: the
encoder's ``space`` (a SHA-256 over model fingerprint, backend and normalisation), with
the backend and the model fingerprint for the error messages. A collection records the
space of its vectors and the index refuses vectors or text queries of another one.

Collections made before spaces were recorded, and uploads of clients that send none,
are the ``torch`` space of the same model (:data:`LEGACY_BACKEND`): the only backend
there was.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "LEGACY_BACKEND",
    "SPACE_FIELDS",
    "SpacedEncoder",
    "VectorSpace",
    "VectorSpaceFormatError",
]

LEGACY_BACKEND = "torch"
"""The backend of every vector made before spaces were recorded."""

SPACE_FIELDS = ("space", "encoder_backend", "model_fingerprint")
"""The wire and record keys of a :class:`VectorSpace`, in this order."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_BACKEND = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")


class VectorSpaceFormatError(ValueError):
    """A space, backend or fingerprint that is not well formed."""


class SpacedEncoder(Protocol):
    """What :meth:`VectorSpace.of` reads from an encoder (no model is loaded for it)."""

    @property
    def space(self) -> str:
        """Hex SHA-256 of (fingerprint, backend, normalisation)."""
        ...

    @property
    def backend(self) -> str:
        """``torch``, ``onnx`` or ``onnx-int8``."""
        ...

    @property
    def fingerprint(self) -> str:
        """The model's weights and settings."""
        ...


@dataclass(frozen=True)
class VectorSpace:
    """Which encoder made a set of vectors.

    Attributes:
        space: ``Encoder.space``: equal spaces mean comparable vectors.
        encoder_backend: ``Encoder.backend`` (for people: which flag made them).
        model_fingerprint: ``Encoder.fingerprint`` (for people: which model).
    """

    space: str
    encoder_backend: str
    model_fingerprint: str

    def __post_init__(self) -> None:
        for name, pattern, rule in (
            ("space", _HEX64, "64 lowercase hex digits (Encoder.space)"),
            ("encoder_backend", _BACKEND, "a backend name such as torch or onnx-int8"),
            ("model_fingerprint", _HEX64, "64 lowercase hex digits (Encoder.fingerprint)"),
        ):
            value = getattr(self, name)
            if not isinstance(value, str) or not pattern.fullmatch(value):
                raise VectorSpaceFormatError(f"{name}={value!r} is not {rule}")

    @classmethod
    def of(cls, encoder: SpacedEncoder) -> VectorSpace:
        """The space of ``encoder``'s vectors (computing it loads no model)."""
        return cls(
            space=encoder.space,
            encoder_backend=encoder.backend,
            model_fingerprint=encoder.fingerprint,
        )

    @classmethod
    def from_fields(cls, values: Mapping[str, object]) -> VectorSpace | None:
        """The space named by ``values``'s :data:`SPACE_FIELDS`; None when none is set.

        Raises:
            VectorSpaceFormatError: Only some of the three are set, or one is malformed.
        """
        given = {k: values.get(k) for k in SPACE_FIELDS}
        if all(v is None for v in given.values()):
            return None
        missing = [k for k, v in given.items() if v is None]
        if missing:
            raise VectorSpaceFormatError(
                f"{', '.join(missing)} missing: a vector space names all of "
                f"{', '.join(SPACE_FIELDS)}"
            )
        return cls(**{k: str(v) for k, v in given.items()})

    def as_fields(self) -> dict[str, str]:
        """The wire form: :data:`SPACE_FIELDS` with their values."""
        return {
            "space": self.space,
            "encoder_backend": self.encoder_backend,
            "model_fingerprint": self.model_fingerprint,
        }

    def describe(self) -> str:
        """``onnx-int8 vectors of model 1a2b3c4d5e6f...`` (for error messages)."""
        return f"{self.encoder_backend} vectors of model {self.model_fingerprint[:12]}..."
