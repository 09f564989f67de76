"""A node whose embeddings are all cached never loads the embedding model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
MODEL_LIBRARIES = ("torch", "sentence_transformers", "transformers", "onnxruntime")

_NODE_DATA_PATH = """
import json, sys
import numpy as np
from client_node.node_data import load_node_data
from embedding_core.encoder import Encoder
queries, positive, docs = load_node_data(sys.argv[1]).vectors(Encoder.load(backend="torch"))
np.save(sys.argv[2], np.concatenate([queries, docs]))
print(json.dumps(sorted(m for m in {libraries!r} if m in sys.modules)))
"""


def _node(folder: Path) -> Path:
    folder.mkdir()
    docs = [{"id": f"d{i}", "text": f"a note on condition {i}"} for i in range(5)]
    records = [
        {"query_id": f"q{i}", "query": f"condition {i}?", "doc_id": f"d{i}"} for i in range(5)
    ]
    (folder / "documents.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "interactions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


def _node_data_path(folder: Path, out: Path) -> list[str]:
    """The node's data path in a fresh Python; returns the model libraries it loaded.

    The torch backend: no ONNX export in a test's fresh folder (the property under test,
    a cache hit touches no model, holds for every backend).

    Its embedding cache is a folder of this test's own (``FEDEMBED_CACHE_DIR``), so the
    first pass is cold whatever caches the machine holds.
    """
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            _NODE_DATA_PATH.format(libraries=MODEL_LIBRARIES),
            str(folder),
            str(out),
        ],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "FEDEMBED_CACHE_DIR": str(out.parent / "cache")},
        check=True,
    )
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_a_node_with_warm_caches_loads_no_model(tmp_path: Path) -> None:
    # Prepare: a first (cold) pass fills the node's cache; it has to load the model.
    folder = _node(tmp_path / "node")
    cold = _node_data_path(folder, tmp_path / "cold.npy")
    assert cold != []  # the check below sees a model library when one is loaded

    # Execute: the data path again, in a fresh process.
    warm = _node_data_path(folder, tmp_path / "warm.npy")

    # Assert: the same vectors, from the cache, and no model library imported.
    np.testing.assert_array_equal(np.load(tmp_path / "warm.npy"), np.load(tmp_path / "cold.npy"))
    assert np.load(tmp_path / "warm.npy").shape[0] == 10
    assert warm == []


def test_the_client_app_module_loads_neither_torch_nor_tenseal() -> None:
    # Every message starts a process that imports it: the heavy parts load on use.
    code = (
        "import json, sys, client_node.client_app\n"
        "print(json.dumps(sorted(m for m in ('torch', 'tenseal') if m in sys.modules)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True
    )

    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
