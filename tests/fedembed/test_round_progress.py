"""A federation's rounds are counted from the central metrics its coordinator writes."""

from __future__ import annotations

import json
from pathlib import Path

from coordinator.run_folder import CENTRAL_METRICS_FILE, HISTORY_FILE
from fedembed.round_progress import rounds_done, watch_rounds


def _metrics(folder: Path, rounds: list[int]) -> None:
    document = {"dataset": "scifact", "rounds": {str(r): {"ndcg@10": 0.6} for r in rounds}}
    (folder / CENTRAL_METRICS_FILE).write_text(json.dumps(document))


def test_rounds_done_counts_evaluated_rounds_after_the_start(tmp_path: Path) -> None:
    assert rounds_done(tmp_path) == 0  # nothing written yet
    (tmp_path / CENTRAL_METRICS_FILE).write_text("{not json")
    assert rounds_done(tmp_path) == 0  # a file being written is not an error

    _metrics(tmp_path, [0, 1, 2, 3])

    assert rounds_done(tmp_path) == 3


def test_watch_rounds_ends_at_the_rounds_the_run_wrote(tmp_path: Path) -> None:
    # Execute: the run writes its rounds while the block runs.
    with watch_rounds(tmp_path, total=5, what="federation test") as progress:
        _metrics(tmp_path, [0, 1, 2])

    # Assert
    assert progress.done == 2
    assert progress.total == 5


def test_a_statistics_task_counts_the_rounds_of_its_history(tmp_path: Path) -> None:
    # Prepare: k-means and the classifier head have no central evaluation; they rewrite
    # history.json after each round.
    history = {"task": "kmeans", "status": "running", "rounds": [{"round": 1}, {"round": 2}]}

    # Execute
    (tmp_path / HISTORY_FILE).write_text(json.dumps(history))

    # Assert
    assert rounds_done(tmp_path) == 2
    (tmp_path / HISTORY_FILE).write_text('{"rounds": 3}')
    assert rounds_done(tmp_path) == 0  # not a list of rounds: nothing counted
