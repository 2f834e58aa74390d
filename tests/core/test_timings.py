"""Per-task seconds kept in the run folder, for the log's last table, report.json and the page."""

import time
from pathlib import Path

import pytest

from pipeline.core import timings


def test_timed_stages_record_their_seconds_and_mapped_ones_their_own_name(tmp_path: Path) -> None:
    @timings.timed()
    def load(run_dir: str) -> str:
        time.sleep(0.05)
        return run_dir

    @timings.timed(lambda run_dir, name: f"train_model[{name}]")
    def train_model(run_dir: str, name: str) -> str:
        return run_dir

    assert load(str(tmp_path)) == str(tmp_path)
    train_model(str(tmp_path), "ease")
    entries = timings.collect(tmp_path)
    assert [e["task"] for e in entries] == ["load", "train_model[ease]"]  # in the order they started
    assert entries[0]["seconds"] >= 0.05 and entries[1]["seconds"] < entries[0]["seconds"]
    # start-up (process start to stage) only for the first stage a process runs: the CLI runs them all
    assert entries[1]["startup_s"] is None


def test_a_failing_stage_still_records_its_time(tmp_path: Path) -> None:
    @timings.timed()
    def validate(run_dir: str) -> str:
        raise ValueError("bad data")

    with pytest.raises(ValueError, match="bad data"):
        validate(str(tmp_path))
    assert [e["task"] for e in timings.collect(tmp_path)] == ["validate"]


def test_the_table_lists_every_task_its_share_the_sum_and_the_wall_time() -> None:
    entries = [
        {
            "task": "fetch",
            "seconds": 1.0,
            "startup_s": 3.5,
            "started": "2026-12-01T00:00:00+00:00",
            "peak_rss_mib": 410,
        },
        {
            "task": "train_model[sasrec]",
            "seconds": 3.0,
            "startup_s": None,
            "started": "2026-12-01T00:00:02+00:00",
            "peak_rss_mib": 2048,
        },
    ]
    text = timings.table(entries)
    lines = text.splitlines()
    assert lines[1].split() == ["fetch", "1.0", "3.5", "25.0%", "410"]
    assert lines[2].split() == ["train_model[sasrec]", "3.0", "75.0%", "2,048"]
    assert lines[3].split() == ["sum", "4.0", "3.5", "2,048"]  # the largest task's peak
    assert timings.wall_s(entries) == 5.0 and lines[4].split()[:2] == ["wall", "5.0"]


def test_process_age_is_positive_and_below_the_time_this_test_took_to_start() -> None:
    age = timings.process_age_s()
    assert age is None or 0 < age < 24 * 3600


@pytest.mark.skipif(not timings.reset_peak_rss(), reason="needs Linux /proc/self/clear_refs")
def test_each_stage_of_one_process_records_its_own_peak_memory(tmp_path: Path) -> None:
    @timings.timed()
    def features(run_dir: str) -> str:
        block = bytearray(400 * 2**20)  # touched: zero-filled pages count once written
        block[::4096] = b"x" * len(block[::4096])
        return run_dir

    @timings.timed()
    def split(run_dir: str) -> str:
        return run_dir

    features(str(tmp_path))
    split(str(tmp_path))
    entries = {e["task"]: e for e in timings.collect(tmp_path)}
    peaks = {task: e["peak_rss_mib"] for task, e in entries.items()}
    # split ran after features had freed its 400 MiB: its peak is its own, not the process's
    assert peaks["features"] >= peaks["split"] + 350
    # what each stage found resident when it began, part of its peak
    assert 0 < entries["features"]["start_rss_mib"] <= peaks["features"] - 350
    assert 0 < entries["split"]["start_rss_mib"] <= peaks["split"]


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads resident memory from Linux /proc")
def test_a_later_stage_starts_without_the_heap_an_earlier_stage_freed(tmp_path: Path) -> None:
    import numpy as np

    kept: list = []

    @timings.timed()
    def features(run_dir: str) -> str:
        blocks = [np.ones(12_000) for _ in range(8_000)]  # 96 kB each: from the C heap, 730 MiB
        kept.extend(blocks[::50])  # a few survivors pin the heap's top, so free() alone returns nothing
        return run_dir

    @timings.timed()
    def split(run_dir: str) -> str:
        return run_dir

    features(str(tmp_path))
    split(str(tmp_path))
    entries = {e["task"]: e for e in timings.collect(tmp_path)}
    assert entries["split"]["start_rss_mib"] < entries["features"]["peak_rss_mib"] - 500


def test_a_stage_boundary_collects_cycles_then_freezes_the_survivors_so_later_collections_skip_them() -> None:
    import gc
    import weakref

    class Node:
        pass

    dead, alive = Node(), Node()
    dead.me, alive.me = dead, alive  # two reference cycles; only `alive` is still referenced
    gone = weakref.ref(dead)
    del dead
    gc.unfreeze()
    try:
        timings.release_free_memory()
        assert gone() is None  # the garbage cycle was collected first
        # the survivor is frozen: no longer among the objects a collection walks
        assert gc.get_freeze_count() > 0 and not any(o is alive for o in gc.get_objects())
    finally:
        gc.unfreeze()
