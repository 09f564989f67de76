"""A node's upload to a real gateway counts its documents as it goes, and names no text."""

from __future__ import annotations

import json
import logging
import re
import secrets
from pathlib import Path

import pytest

from client_node.index_upload import upload_documents
from embedding_core.encoder import Encoder
from embedding_core.progress import PROGRESS_ENV
from index_client.admin_client import AdminClient
from secure_index.service.local_service import start_index_service

DOCUMENTS = [
    ("n1", "Claims about a member's private cardiology notes."),
    ("n2", "Another member's private oncology notes."),
    ("n3", "A third private note on diabetes care."),
    ("n4", "A fourth private note on asthma."),
    ("n5", "A fifth private note on migraine."),
]


def _node_dir(root: Path) -> Path:
    root.mkdir(parents=True)
    (root / "documents.jsonl").write_text(
        "".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in DOCUMENTS)
    )
    (root / "interactions.jsonl").write_text(
        json.dumps({"query_id": "q1", "query": "private notes", "doc_id": "n1"}) + "\n"
    )
    return root


def test_an_upload_reports_its_progress_in_documents_and_logs_no_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare: a gateway (no text queries: it loads no model) with one at-rest collection
    # for this encoder, and a node key.
    monkeypatch.setenv(PROGRESS_ENV, "log")
    encoder = Encoder.load()
    service = start_index_service(
        tmp_path / "service", kek=secrets.token_bytes(32), extra_args=("--no-text-queries",)
    )
    try:
        with AdminClient(service.url, service.admin_token) as admin:
            admin.create_collection("notes", encoder.dimension)
            node = admin.issue_credential("node", "node-a", ["notes"])
        caplog.set_level(logging.INFO)

        # Execute: five documents, two a batch.
        report = upload_documents(
            _node_dir(tmp_path / "node"),
            node_id="node-a",
            gateway_url=service.url,
            token=node.token,
            collection="notes",
            encoder=encoder,
            batch_size=2,
        )
    finally:
        service.stop()

    # Assert
    assert (report.documents, report.inserted, report.batches) == (5, 5, 3)
    messages = [r.getMessage() for r in caplog.records]
    assert "upload to notes: started (5 documents)" in messages
    assert any(re.fullmatch(r"upload to notes: done, 5 documents in \d+s", m) for m in messages)
    assert not any(text in m for m in messages for _, text in DOCUMENTS)
