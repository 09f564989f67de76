"""Trainable adapter on top of the frozen encoder.

The federation trains only this small module; the encoder stays frozen, so corpus
embeddings can be computed once. Two shapes:

* ``residual_linear``: ``y = x + W x + b`` with ``W``, ``b`` zero-initialised, so a
  fresh adapter is the identity (the base model's quality is the starting point).
* ``low_rank``: ``y = x + U V x`` with ``U`` zero-initialised (the LoRA
  parameterisation of Hu et al., ICLR 2022, applied to the embedding).
* ``shift``: ``y = x + b`` with ``b`` zero-initialised: one learned vector that moves
  every query towards the documents the training queries cite (a document prior). Its
  ``in_dim`` parameters take DP noise far better than a matrix does, and every record
  pulls the same few hundred numbers, so one record's trace drowns among the others':
  the recipe for a tight membership-inference bound (benchmarks/RESULTS.md).

An optional output projection to ``out_dim < in_dim`` (random semi-orthogonal at
initialisation, so distances are roughly preserved by Johnson-Lindenstrauss) makes
smaller vectors for the index. Outputs are L2-normalised.

Saved as ``adapter.safetensors`` plus an ``adapter.json`` manifest that records the
base model, dimensions and a SHA-256 of the weights file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from embedding_core.atomic_file import atomic_write_bytes
from embedding_core.errors import AdapterError

__all__ = [
    "ADAPTER_FORMAT",
    "ADAPTER_FORMAT_VERSION",
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "Adapter",
    "AdapterKind",
    "AdapterSide",
]

logger = logging.getLogger(__name__)

ADAPTER_FORMAT = "fedembed-adapter"
ADAPTER_FORMAT_VERSION = 1
WEIGHTS_FILE = "adapter.safetensors"
MANIFEST_FILE = "adapter.json"
_APPLY_BATCH = 4096


class AdapterKind(StrEnum):
    """Parameterisation of the adapter."""

    RESIDUAL_LINEAR = "residual_linear"
    LOW_RANK = "low_rank"
    SHIFT = "shift"


class AdapterSide(StrEnum):
    """Which texts the adapter is applied to at retrieval time.

    ``query``: only queries pass through it, so document vectors already in the index
    stay valid when the model improves. ``both``: queries and documents.
    """

    QUERY = "query"
    BOTH = "both"


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Adapter(nn.Module):
    """Residual linear, low-rank or shift adapter with optional dimension reduction.

    Args:
        in_dim: Width of the encoder's vectors.
        kind: ``residual_linear``, ``low_rank`` or ``shift``.
        rank: Rank of the low-rank update (required for ``low_rank``).
        out_dim: Output width; ``None`` keeps ``in_dim``.
        side: Which texts the adapter applies to at retrieval time.
        seed: Seed for the random initialisations (low-rank ``V``, projection).
    """

    def __init__(
        self,
        in_dim: int,
        *,
        kind: AdapterKind | str = AdapterKind.RESIDUAL_LINEAR,
        rank: int | None = None,
        out_dim: int | None = None,
        side: AdapterSide | str = AdapterSide.BOTH,
        seed: int = 0,
    ) -> None:
        super().__init__()
        try:
            self.kind = AdapterKind(kind)
            self.side = AdapterSide(side)
        except ValueError as exc:
            raise AdapterError(
                str(exc),
                expected=f"kind in {[k.value for k in AdapterKind]}, "
                f"side in {[s.value for s in AdapterSide]}",
            ) from exc
        if in_dim < 1:
            raise AdapterError(f"in_dim must be >= 1, got {in_dim}")
        if out_dim is not None and not 1 <= out_dim <= in_dim:
            raise AdapterError(
                f"out_dim={out_dim} is out of range",
                expected=f"1 <= out_dim <= in_dim={in_dim}, or no out_dim",
            )
        if self.kind is AdapterKind.LOW_RANK:
            if rank is None or not 1 <= rank <= in_dim:
                raise AdapterError(
                    f"low_rank adapter needs 1 <= rank <= {in_dim}, got {rank}",
                    fix="pass rank=R, e.g. rank=16",
                )
        elif rank is not None:
            raise AdapterError(
                "rank is only meaningful for kind='low_rank'",
                fix="drop rank or use kind='low_rank'",
            )
        self.in_dim = in_dim
        self.out_dim = out_dim if out_dim is not None else in_dim
        self.rank = rank
        self.seed = seed
        self.base_model: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {}
        generator = torch.Generator().manual_seed(seed)

        self.linear: nn.Linear | None = None
        self.down: nn.Linear | None = None
        self.up: nn.Linear | None = None
        self.shift: nn.Parameter | None = None
        if self.kind is AdapterKind.RESIDUAL_LINEAR:
            self.linear = nn.Linear(in_dim, in_dim)
            nn.init.zeros_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)
        elif self.kind is AdapterKind.SHIFT:
            self.shift = nn.Parameter(torch.zeros(in_dim))
        else:
            assert rank is not None
            self.down = nn.Linear(in_dim, rank, bias=False)
            self.up = nn.Linear(rank, in_dim, bias=False)
            with torch.no_grad():
                self.down.weight.copy_(torch.randn(rank, in_dim, generator=generator) / in_dim**0.5)
            nn.init.zeros_(self.up.weight)

        self.projection: nn.Linear | None = None
        if self.out_dim != in_dim:
            self.projection = nn.Linear(in_dim, self.out_dim, bias=False)
            with torch.no_grad():
                q, _ = torch.linalg.qr(torch.randn(in_dim, self.out_dim, generator=generator))
                self.projection.weight.copy_(q.T * (in_dim / self.out_dim) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Map encoder vectors ``(n, in_dim)`` to normalised ``(n, out_dim)`` vectors."""
        if self.linear is not None:
            y = x + self.linear(x)
        elif self.shift is not None:
            y = x + self.shift
        else:
            assert self.down is not None
            assert self.up is not None
            y = x + self.up(self.down(x))
        if self.projection is not None:
            y = self.projection(y)
        return nn.functional.normalize(y, dim=-1)

    def config(self) -> dict[str, Any]:
        """Constructor arguments, as stored in the manifest."""
        return {
            "kind": self.kind.value,
            "in_dim": self.in_dim,
            "out_dim": self.out_dim,
            "rank": self.rank,
            "side": self.side.value,
            "seed": self.seed,
        }

    @torch.no_grad()
    def transform(self, vectors: NDArray[np.float32]) -> NDArray[np.float32]:
        """Apply the adapter to numpy vectors (batched, no gradients)."""
        if vectors.ndim != 2 or vectors.shape[1] != self.in_dim:
            raise AdapterError(
                f"adapter expects vectors of shape (n, {self.in_dim}), got {vectors.shape}",
                fix="use the encoder the adapter was trained on",
            )
        was_training = self.training
        self.eval()
        out = np.empty((vectors.shape[0], self.out_dim), dtype=np.float32)
        for start in range(0, vectors.shape[0], _APPLY_BATCH):
            batch = torch.from_numpy(np.ascontiguousarray(vectors[start : start + _APPLY_BATCH]))
            out[start : start + batch.shape[0]] = self(batch.float()).numpy()
        self.train(was_training)
        return out

    def save(
        self,
        directory: str | Path,
        *,
        base_model_id: str,
        base_model_fingerprint: str,
        metadata: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``adapter.safetensors`` and ``adapter.json`` into ``directory``.

        Args:
            directory: Target folder (created if needed).
            base_model_id: Name of the encoder the adapter was trained on.
            base_model_fingerprint: ``Encoder.fingerprint`` of that encoder.
            metadata: Extra JSON-serialisable facts (rounds, nodes, epsilon, ...).

        Returns:
            The path of the manifest.
        """
        from safetensors.torch import save

        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        tensors = {name: t.detach().contiguous().cpu() for name, t in self.state_dict().items()}
        weights = save(tensors)
        atomic_write_bytes(folder / WEIGHTS_FILE, weights)
        manifest = {
            "format": ADAPTER_FORMAT,
            "format_version": ADAPTER_FORMAT_VERSION,
            **self.config(),
            "base_model": {"id": base_model_id, "fingerprint": base_model_fingerprint},
            "weights_file": WEIGHTS_FILE,
            "weights_sha256": hashlib.sha256(weights).hexdigest(),
            "parameters": int(sum(t.numel() for t in tensors.values())),
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "metadata": metadata or {},
        }
        manifest_path = folder / MANIFEST_FILE
        atomic_write_bytes(manifest_path, (json.dumps(manifest, indent=2) + "\n").encode())
        logger.info(
            "save: adapter=%s kind=%s params=%d", folder, self.kind.value, manifest["parameters"]
        )
        return manifest_path

    @staticmethod
    def read_manifest(directory: str | Path) -> dict[str, Any]:
        """Read and check an adapter manifest without loading the weights."""
        folder = Path(directory)
        path = folder / MANIFEST_FILE if folder.is_dir() else folder
        if not path.is_file():
            raise AdapterError(
                f"no adapter manifest at {path}",
                expected=f"a folder holding {MANIFEST_FILE} and {WEIGHTS_FILE}",
                fix="pass --adapter with the folder `Adapter.save` or the federation wrote",
            )
        try:
            manifest = json.loads(path.read_text())
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AdapterError(f"adapter manifest {path} is not valid JSON: {exc}") from exc
        if not isinstance(manifest, dict) or manifest.get("format") != ADAPTER_FORMAT:
            raise AdapterError(
                f"{path} is not a fedembed adapter manifest",
                expected=f'"format": "{ADAPTER_FORMAT}"',
            )
        if manifest.get("format_version") != ADAPTER_FORMAT_VERSION:
            raise AdapterError(
                f"{path} has format_version {manifest.get('format_version')}",
                expected=f"format_version {ADAPTER_FORMAT_VERSION}",
                fix="upgrade fedembed, or re-export the adapter with this version",
            )
        return manifest

    @classmethod
    def load(cls, directory: str | Path) -> Adapter:
        """Load an adapter saved by :meth:`save`, verifying the weights' hash."""
        from safetensors import SafetensorError
        from safetensors.torch import load

        folder = Path(directory)
        if folder.is_file():
            folder = folder.parent
        manifest = cls.read_manifest(folder)
        weights_path = folder / str(manifest.get("weights_file", WEIGHTS_FILE))
        if not weights_path.is_file():
            raise AdapterError(f"adapter weights {weights_path} are missing")
        data = weights_path.read_bytes()
        if hashlib.sha256(data).hexdigest() != manifest.get("weights_sha256"):
            raise AdapterError(
                f"adapter weights {weights_path} do not match the SHA-256 in its manifest",
                expected="the weights file written together with the manifest",
                fix="the file is corrupt or was replaced: restore both files from the source",
            )
        try:
            adapter = cls(
                int(manifest["in_dim"]),
                kind=manifest["kind"],
                rank=manifest.get("rank"),
                out_dim=int(manifest["out_dim"]),
                side=manifest.get("side", AdapterSide.BOTH),
                seed=int(manifest.get("seed", 0)),
            )
            adapter.load_state_dict(load(data), strict=True)
        except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
            raise AdapterError(
                f"adapter at {folder} does not match its manifest: {exc}",
                fix="re-export the adapter",
            ) from exc
        adapter.base_model = dict(manifest.get("base_model", {}))
        adapter.metadata = dict(manifest.get("metadata", {}))
        adapter.eval()
        logger.info("load: adapter=%s kind=%s", folder, adapter.kind.value)
        return adapter

    def check_base(self, fingerprint: str) -> None:
        """Refuse to run on an encoder other than the one the adapter was trained on."""
        expected = self.base_model.get("fingerprint")
        if expected and expected != fingerprint:
            raise AdapterError(
                f"the adapter was trained on another base model ({self.base_model.get('id')})",
                expected=f"an encoder with fingerprint {expected[:12]}...",
                fix="pass --model with the model the adapter was trained on",
            )
