"""``fedembed node analyse``: classification, clustering and anomaly detection on the node.

Each command reads the node's own records (``--input``), encodes them with the node's
encoder backend through the embedding cache (``--adapter`` applies a released adapter)
and writes its results on the node: nothing leaves it. ``--json`` prints one JSON line
last. Heavy imports happen inside each command, so ``fedembed --help`` stays fast.
"""

from __future__ import annotations

import typer

from client_node.analysis.anomalies_cli import anomalies_cmd
from client_node.analysis.classify_cli import classify_cmd, predict_cmd
from client_node.analysis.cluster_cli import cluster_cmd

__all__ = ["analyse_app"]

analyse_app = typer.Typer(
    help="Use the shared model on this node's own records: classify, cluster, find "
    "anomalies. Nothing leaves the node.",
    no_args_is_help=True,
)
analyse_app.command("anomalies")(anomalies_cmd)
analyse_app.command("cluster")(cluster_cmd)
analyse_app.command("classify")(classify_cmd)
analyse_app.command("predict")(predict_cmd)
