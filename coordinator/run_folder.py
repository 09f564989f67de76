"""The files of a federation run's folder (``out-dir``), named once for every reader.

The ServerApp writes them (:mod:`coordinator.publication`,
:mod:`coordinator.central_evaluation`, :mod:`coordinator.federation_ledger`); the admin
API reads them for a run's progress without importing the training stack.
"""

from __future__ import annotations

__all__ = [
    "ADAPTER_DIR",
    "CENTRAL_METRICS_FILE",
    "HISTORY_FILE",
    "LEDGER_FILE",
    "STATUS_FAILED",
    "STATUS_SUCCEEDED",
]

LEDGER_FILE = "federation_ledger.json"
"""The federation ledger, rewritten after every round."""
CENTRAL_METRICS_FILE = "central_metrics.json"
"""Per-round central metrics, rewritten after every evaluation."""
HISTORY_FILE = "history.json"
"""The run summary, written at the end: ``status`` succeeded or failed (with ``reason``)."""
ADAPTER_DIR = "global_adapter"
"""The published adapter and its manifest (only when a round was aggregated)."""
STATUS_SUCCEEDED = "succeeded"
STATUS_FAILED = "failed"
