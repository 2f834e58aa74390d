"""Progress: a bar on a terminal, spaced concise lines in a log, nothing when switched off."""

import logging

import pytest

from pipeline.core import progress
from pipeline.core.progress import Progress

log = logging.getLogger("test.progress")


def test_mode_is_log_off_a_terminal_and_the_environment_overrides_it(monkeypatch) -> None:
    monkeypatch.delenv("MOVIELENS_PROGRESS", raising=False)
    assert progress.mode() == "log"  # pytest captures stderr: not a terminal
    monkeypatch.setenv("MOVIELENS_PROGRESS", "BAR")
    assert progress.mode() == "bar"
    monkeypatch.setenv("MOVIELENS_PROGRESS", "nonsense")
    assert progress.mode() == "log"


def test_log_mode_writes_a_line_per_interval_with_counts_and_share(monkeypatch, caplog) -> None:
    monkeypatch.setenv("MOVIELENS_PROGRESS", "log")
    caplog.set_level(logging.INFO, "test.progress")
    with Progress(200, "scoring", "users", log, every_s=0) as p:
        p.update(50)
        p.update(150)  # done: the caller logs its own summary, no progress line
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert lines[0].startswith("scoring: 50/200 users (25%), ") and "left" in lines[0]


def test_log_mode_stays_quiet_within_the_interval(monkeypatch, caplog) -> None:
    monkeypatch.setenv("MOVIELENS_PROGRESS", "log")
    caplog.set_level(logging.INFO, "test.progress")
    with Progress(1_000, "epoch 1/3", "samples", log, every_s=3600) as p:
        for _ in range(100):
            p.update(5)
    assert caplog.records == []


@pytest.mark.parametrize("chosen", ["bar", "off"])
def test_bar_draws_on_stderr_and_off_draws_nothing(monkeypatch, capsys, caplog, chosen) -> None:
    monkeypatch.setenv("MOVIELENS_PROGRESS", chosen)
    caplog.set_level(logging.INFO, "test.progress")
    with Progress(10, "downloading x.zip", "B", log, every_s=0) as p:
        for _ in range(10):
            p.update(1)
    err = capsys.readouterr().err
    assert ("downloading x.zip" in err) == (chosen == "bar")
    assert caplog.records == []
