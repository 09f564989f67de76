"""Progress of a long step: log lines, a bar on a stream, silence, and the environment's say."""

from __future__ import annotations

import io
import logging
import re

import pytest

from embedding_core.progress import PROGRESS_ENV, Progress, progress_mode, track

LOGGER = "embedding_core.progress"
SECRET = "the patient's diagnosis"


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_log_mode_writes_count_share_and_rate_once_the_interval_passes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare
    caplog.set_level(logging.INFO, logger=LOGGER)

    # Execute: interval 0, so every advance is due a line.
    with Progress(10, what="encode corpus", unit="texts", interval_s=0, mode="log") as progress:
        progress.advance(4)
        progress.advance(6)

    # Assert
    lines = _lines(caplog)
    assert lines[0] == "encode corpus: started (10 texts)"
    assert re.fullmatch(
        r"encode corpus: 4/10 texts \(40%\), [0-9.]+ texts/s, \d+s elapsed, about \S+ left",
        lines[1],
    )
    assert lines[2].startswith("encode corpus: 10/10 texts (100%)")
    assert re.fullmatch(r"encode corpus: done, 10 texts in \d+s", lines[3])
    assert len(lines) == 4


def test_log_mode_waits_for_the_interval_between_lines(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare
    caplog.set_level(logging.INFO, logger=LOGGER)

    # Execute: an hour between lines: only the start and the end are logged.
    with Progress(None, what="upload", unit="documents", interval_s=3600, mode="log") as progress:
        for _ in range(50):
            progress.advance()

    # Assert
    first, last = _lines(caplog)
    assert first == "upload: started (? documents)"
    assert re.fullmatch(r"upload: done, 50 documents in \d+s", last)


def test_a_step_ended_by_an_error_says_it_stopped(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare
    caplog.set_level(logging.INFO, logger=LOGGER)

    def fail_after_one(progress: Progress) -> None:
        progress.advance()
        raise RuntimeError("boom")

    # Execute
    with pytest.raises(RuntimeError), Progress(3, what="audit", mode="log") as progress:
        fail_after_one(progress)

    # Assert
    assert re.fullmatch(r"audit: stopped, 1 items in \d+s", _lines(caplog)[-1])


def test_bar_mode_draws_on_the_given_stream_and_logs_no_count_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare
    caplog.set_level(logging.INFO, logger=LOGGER)
    stream = io.StringIO()

    # Execute
    with Progress(
        8, what="build index", unit="vectors", interval_s=0, mode="bar", stream=stream
    ) as progress:
        progress.advance(8)

    # Assert
    drawn = stream.getvalue()
    assert "build index" in drawn
    assert "8/8" in drawn
    lines = _lines(caplog)
    assert len(lines) == 1
    assert lines[0].startswith("build index: done, 8 vectors")


def test_off_mode_is_silent(caplog: pytest.LogCaptureFixture) -> None:
    # Prepare
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    stream = io.StringIO()

    # Execute
    with Progress(5, what="audit", interval_s=0, mode="off", stream=stream) as progress:
        progress.advance(5)

    # Assert
    assert progress.done == 5
    assert stream.getvalue() == ""
    assert _lines(caplog) == []


@pytest.mark.parametrize("chosen", ["bar", "log", "off"])
def test_the_environment_chooses_the_mode(monkeypatch: pytest.MonkeyPatch, chosen: str) -> None:
    # Prepare
    monkeypatch.setenv(PROGRESS_ENV, chosen.upper())
    stream = io.StringIO()

    # Execute
    progress = Progress(1, what="step", stream=stream)
    progress.close()

    # Assert
    assert progress_mode(stream) == chosen
    assert progress.mode == chosen


def test_without_the_environment_a_stream_that_is_no_terminal_gets_log_lines(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Prepare
    monkeypatch.delenv(PROGRESS_ENV, raising=False)

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    # Execute
    modes = progress_mode(io.StringIO()), progress_mode(Terminal())

    # Assert
    assert modes == ("log", "bar")


def test_a_mode_that_is_none_of_the_three_is_refused() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="bar, log or off"):
        Progress(1, what="step", mode="loud")
    with pytest.raises(ValueError, match="only moves forward"):
        Progress(1, what="step", mode="off").advance(-1)


def test_track_yields_every_item_and_lines_carry_no_item(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # Prepare
    monkeypatch.setenv(PROGRESS_ENV, "log")
    caplog.set_level(logging.INFO, logger=LOGGER)
    texts = [f"{SECRET} {i}" for i in range(5)]

    # Execute
    seen = list(track(texts, what="encode notes", unit="texts", interval_s=0))

    # Assert
    assert seen == texts
    lines = _lines(caplog)
    assert lines[0] == "encode notes: started (5 texts)"
    assert any(line.startswith("encode notes: 3/5 texts") for line in lines)
    assert not any(SECRET in line for line in lines)
