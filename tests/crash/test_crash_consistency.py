"""kill -9 anywhere in loading, publishing or the serving export loses nothing published.

The short version of tests/crash/harness.py: every named kill point once and
a few kills at random times with a fixed seed. The long version is
`python -m tests.crash.harness --random 300` (figures in docs/results.md).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest

from tests.crash import harness


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> harness.Template:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MOVIELENS_VAR_DIR", "")  # build_template sets it; restored after
        return harness.build_template(tmp_path_factory.mktemp("crash"))


@pytest.mark.parametrize(("step", "point"), harness.POINTS, ids=[p for _, p in harness.POINTS])
def test_a_kill_at_each_named_point_loses_nothing_and_a_rerun_completes(template, step: str, point: str) -> None:
    tally = harness.Tally()
    outcome = harness.trial(template, step, tally, crash_at=point)
    assert outcome == "killed", f"the child never reached {point}"
    assert tally.kills == 1 and tally.states >= 8  # each check after the kill and after the re-run
    assert tally.losses == []


def test_kills_at_random_times_during_publishing_lose_nothing(template) -> None:
    tally = harness.Tally()
    harness.random_kills(template, tally, n=4, seed=7)
    assert tally.kills >= 3 and tally.losses == []


def test_the_checks_count_a_half_replaced_run_as_a_loss(template, tmp_path: Path) -> None:
    """The harness can fail: a warehouse holding A's rows and half of B's is reported."""
    folder = harness._trial_folder(template, "publish", tmp_path / "mixed")
    with duckdb.connect(str(folder / "wh.duckdb")) as con:
        con.execute("DELETE FROM recommendations WHERE run_id = ? AND user_id % 2 = 0", [harness.RUN_A])
    tally = harness.Tally()
    harness._check_after_kill(template, folder, "publish", tally, "planted")
    assert any("warehouse current run is a mix" in loss for loss in tally.losses)
    shutil.rmtree(folder)
