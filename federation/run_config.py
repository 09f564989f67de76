"""The federation's run configuration, read once from ``[tool.flwr.app.config]``.

:class:`FederationConfig` is the :class:`~federation.round_settings.RoundSettings` every
node receives plus what only the coordinator needs (kit, node-level noise, server
optimiser, quorum, evaluation, output). How nodes are weighted (``weighting``) is a
round setting: every node sees it and may refuse it. Every key is validated here with a message that
names the key, the value and the fix; the rest of the coordinator only sees a typed
``FederationConfig``, and the nodes only see :meth:`round_settings`.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar

from embedding_core.errors import FedembedError
from federation.classifier_settings import check_classifier_config
from federation.kmeans_settings import check_kmeans_config
from federation.round_settings import RoundSettings
from federation.wire import AggregationMode, WeightingMode

__all__ = ["NO_EVALUATION", "FederationConfig"]

logger = logging.getLogger(__name__)

NO_EVALUATION = "none"
"""``eval-dataset = "none"``: no central evaluation (rounds still run)."""

_DATASET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_RUN_TAG = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:+@-]{0,127}")


@dataclass(frozen=True, kw_only=True)
class FederationConfig(RoundSettings):
    """Typed run configuration (names match the TOML keys with ``-`` for ``_``).

    Attributes:
        run_tag: As the round's, but empty by default: the ServerApp then tags the run
            ``flwr-<Flower run id>`` (:meth:`with_run_tag`), so no two runs share a tag.
        allow_insecure_plaintext: Permit ``aggregation = "plaintext"`` (tests only).
        coordinator_kit: The coordinator kit folder (CKKS public context).
        embedding_dim: Width of the base encoder's vectors.
        node_noise_multiplier: Node-level DP noise on the aggregate (plaintext mode).
        server_learning_rate: Server Adam on the aggregate (0 = FedAvg).
        min_nodes: Nodes every round needs.
        fraction_train: Fraction of the available nodes sampled per round.
        eval_dataset: The public dataset of the central evaluation: a BEIR dataset
            folder under ``data_dir``, or ``"none"`` to skip the evaluation.
        data_dir: Where that dataset lives (empty: the default data folder).
        out_dir: Where the global adapter, ledger and history are written.
        round_timeout: Seconds a round waits for replies.
        task, kmeans_*: ``task = "kmeans"`` runs DP federated k-means instead of
            training (:mod:`federation.kmeans_settings` describes its keys).
        classifier_*: ``task = "classifier"`` trains a DP classifier head instead
            (:mod:`federation.classifier_settings` describes its keys).
    """

    source: ClassVar[str] = "run config"

    run_tag: str = ""  # empty: the ServerApp tags the run flwr-<Flower run id>
    allow_insecure_plaintext: bool = False
    coordinator_kit: str = ""
    embedding_dim: int = 384
    node_noise_multiplier: float = 0.0
    server_learning_rate: float = 0.0
    min_nodes: int = 2
    fraction_train: float = 1.0
    eval_dataset: str = "scifact"
    data_dir: str = ""
    out_dir: str = "out/federation"
    round_timeout: float = 1800.0
    task: str = "train"
    kmeans_k: int = 8
    kmeans_rounds: int = 5
    kmeans_epsilon: float = 1.0
    kmeans_records: str = "records.csv"
    kmeans_text_column: str = "text"
    kmeans_public_corpus: str = ""
    classifier_labels: str = ""
    classifier_rounds: int = 30
    classifier_epsilon: float = 1.0
    classifier_records: str = "records.csv"
    classifier_text_column: str = "text"
    classifier_label_column: str = "label"
    classifier_clip: float = 1.0
    classifier_learning_rate: float = 50.0

    @classmethod
    def from_run_config(cls, run_config: Mapping[str, object]) -> FederationConfig:
        """Validate Flower's run config (unknown keys are an error, not ignored)."""
        return cls._from_mapping(run_config, source="run config")

    def with_run_tag(self, flower_run_id: int) -> FederationConfig:
        """This config with a run tag: its own, or ``flwr-<run id>`` when ``run-tag`` is empty.

        Every run needs a distinct tag: it names the run in every node's privacy ledger
        and in its signed contributions, and a node refuses a round of a run tag it has
        already been charged for.
        """
        if self.run_tag:
            return self
        return dataclasses.replace(self, run_tag=f"flwr-{flower_run_id}")

    def validate(self) -> None:
        """Check ranges and combinations (the round's own, then the coordinator's)."""
        super().validate()
        if self.run_tag and not _RUN_TAG.fullmatch(self.run_tag):
            raise self._bad(
                "run_tag",
                "empty (the Flower run id names the run) or up to 128 letters, digits "
                "and ._:+@- starting with a letter or digit",
            )
        if self.eval_dataset != NO_EVALUATION and not _DATASET_NAME.fullmatch(self.eval_dataset):
            raise self._bad(
                "eval_dataset",
                f"{NO_EVALUATION!r} (no central evaluation) or the name of a BEIR dataset "
                "folder under data-dir (letters, digits, ._-; no path)",
            )
        if self.aggregation == AggregationMode.PLAINTEXT and not self.allow_insecure_plaintext:
            raise FedembedError(
                "plaintext aggregation lets the coordinator see every node's update",
                expected="aggregation='ckks', or an explicit allow-insecure-plaintext=true",
                fix="use CKKS (provision kits), or set allow-insecure-plaintext=true for tests",
            )
        if self.aggregation == AggregationMode.CKKS and not self.coordinator_kit:
            raise self._bad("coordinator_kit", "the coordinator kit folder")
        if self.embedding_dim < 1:
            raise self._bad("embedding_dim", ">= 1")
        if self.min_nodes < 1:
            raise self._bad("min_nodes", ">= 1")
        if not 0 < self.fraction_train <= 1:
            raise self._bad("fraction_train", "in (0, 1]")
        if not self.round_timeout > 0:
            raise self._bad("round_timeout", "> 0 seconds")
        if self.node_noise_multiplier < 0:
            raise self._bad("node_noise_multiplier", ">= 0")
        if self.node_noise_multiplier > 0 and self.aggregation == AggregationMode.CKKS:
            # The decrypted CKKS aggregate gets no node-level noise: an epsilon for it would
            # be reported for noise that was never added.
            raise self._bad(
                "node_noise_multiplier",
                "0 with ckks (for DP the coordinator cannot undo, use dp-noise-shares)",
            )
        if self.node_noise_multiplier > 0 and self.update_clip_norm <= 0:
            raise self._bad("update_clip_norm", "> 0 when node-level DP is on")
        if self.aggregation == AggregationMode.SECAGGPLUS:
            if self.node_noise_multiplier > 0:
                raise self._bad("node_noise_multiplier", "0 with secaggplus")
            if self.min_nodes < 2:
                raise self._bad("min_nodes", ">= 2 with secaggplus")
        if self.node_noise_multiplier > 0 and self.weighting != WeightingMode.UNIFORM:
            # The node-level noise is calibrated to a mean of equally weighted updates.
            raise self._bad("weighting", "'uniform' when node-level DP is on")
        self._validate_distributed_dp()
        check_kmeans_config(self)
        check_classifier_config(self)

    def _validate_distributed_dp(self) -> None:
        shares = self.dp_noise_shares
        if not self.server_learning_rate >= 0:
            raise self._bad("server_learning_rate", ">= 0 (0 = FedAvg)")
        if self.server_learning_rate > 0 and self.aggregation == AggregationMode.SECAGGPLUS:
            raise self._bad("server_learning_rate", "0 with secaggplus")
        if shares == 0:
            return
        if shares > 1 and self.aggregation != AggregationMode.CKKS:
            raise FedembedError(
                f"run config dp-noise-shares={shares} needs CKKS secure aggregation: each node "
                f"adds only 1/sqrt({shares}) of the noise, so its update alone must stay hidden",
                expected="aggregation='ckks' (or dp-noise-shares=0 or 1)",
                fix="set aggregation='ckks' and a coordinator-kit",
            )
        if self.min_nodes < shares:
            raise self._bad("min_nodes", f">= dp-noise-shares ({shares})")
        if self.node_noise_multiplier > 0:
            raise self._bad("node_noise_multiplier", "0 with dp-noise-shares")
