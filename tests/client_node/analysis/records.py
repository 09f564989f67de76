"""What the ``fedembed node analyse`` tests share: BANKING77 subsets, the CLI, its output.

The tests write small BANKING77 subsets as CSV files, run the real ``fedembed`` entry
(``main``, as a shell would) through the ``analyse`` fixture of ``conftest.py``, and read
the JSON line it prints last and the JSON-lines files it writes.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from embedding_core.adapter import Adapter
from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, Encoder

__all__ = [
    "Runner",
    "assert_one_clear_error",
    "banking77",
    "fill",
    "first_of_each",
    "jsonl",
    "last_json",
    "random_adapter",
    "spread_intents",
    "write_csv",
]

Runner = Callable[..., tuple[int, str, str]]
"""Runs a command with its arguments: (exit code, stdout, stderr)."""


def banking77(shared_data_dir: Path, split: str) -> list[dict[str, str]]:
    """The rows (``text``, ``category``) of BANKING77's ``train`` or ``test`` split."""
    with (shared_data_dir / "banking77" / f"{split}.csv").open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def spread_intents(rows: list[dict[str, str]], step: int, count: int | None = None) -> list[str]:
    """Every ``step``-th intent in sorted order (the first ``count``): spread-out classes."""
    return sorted({r["category"] for r in rows})[::step][:count]


def first_of_each(
    rows: list[dict[str, str]], intents: Iterable[str], per_intent: int
) -> list[dict[str, str]]:
    """The first ``per_intent`` rows of each intent, intent by intent."""
    return [r for i in intents for r in [x for x in rows if x["category"] == i][:per_intent]]


def write_csv(path: Path, rows: list[dict[str, str]], fields: list[str]) -> Path:
    """``rows`` as a CSV file with columns ``fields`` (other keys left out); ``path``."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def fill(args: list[str], records: dict[str, Path]) -> list[str]:
    """``args`` with each ``{name}`` replaced by the path of ``records[name]``."""
    return [a.format(**{k: str(v) for k, v in records.items()}) for a in args]


def last_json(out: str) -> dict[str, Any]:
    """The JSON line a command printed last (``--json``)."""
    return dict(json.loads(out.strip().splitlines()[-1]))


def jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def assert_one_clear_error(code: int, err: str, message: str) -> None:
    """Exit 2, no traceback, and ``message`` in the one ``error:`` line (log lines aside).

    A bad option value is refused by click before the command runs: then ``message`` is
    in its usage box.
    """
    assert code == 2
    assert "Traceback" not in err
    if "Usage:" in err:
        assert message in " ".join(err.split())
        return
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, err
    assert message in errors[0]


def random_adapter(
    folder: Path, *, seed: int, scale: float, kind: str = "low_rank", rank: int | None = 8
) -> Path:
    """A non-trivial adapter on the bundled encoder: seeded noise on every parameter."""
    encoder = Encoder.load(None, backend=DEFAULT_ENCODER_BACKEND)
    adapter = Adapter(384, kind=kind, rank=rank if kind == "low_rank" else None, seed=seed)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in adapter.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    adapter.save(folder, base_model_id=encoder.model_id, base_model_fingerprint=encoder.fingerprint)
    return folder
