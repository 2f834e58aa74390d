"""Run settings that decide how the machine is shared."""

import pytest

from pipeline.core.config import threads_per_task, training_slots


def test_training_slots_default_to_one_per_four_cores_and_at_least_one(monkeypatch) -> None:
    monkeypatch.delenv("MOVIELENS_TRAINING_SLOTS", raising=False)
    for cores, slots, threads in ((2, 1, 2), (4, 1, 4), (16, 4, 4), (1, 1, 1)):
        monkeypatch.setattr("os.cpu_count", lambda c=cores: c)
        assert (training_slots(), threads_per_task()) == (slots, threads)


def test_the_slots_setting_overrides_and_threads_follow_it(monkeypatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    monkeypatch.setenv("MOVIELENS_TRAINING_SLOTS", "2")
    assert (training_slots(), threads_per_task()) == (2, 8)
    monkeypatch.setenv("MOVIELENS_TRAINING_SLOTS", "32")  # more slots than cores: one thread each
    assert threads_per_task() == 1
    monkeypatch.setenv("MOVIELENS_TRAINING_SLOTS", "two")
    with pytest.raises(ValueError):
        training_slots()
