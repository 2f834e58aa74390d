"""Backfill arguments: the DAG per interval and clear refusals before anything starts."""

from datetime import date, timedelta

import pytest

from ops.backfill import BackfillError, _day, backfill, dag_for


def test_every_picks_the_replay_dag_and_none_the_nightly_schedule() -> None:
    assert dag_for(None, "@daily") == "movielens_replay_day"  # the nightly DAG's default schedule
    assert dag_for(None, "@weekly") == "movielens_replay_week"
    assert dag_for(None, "30 2 * * *") == "movielens_nightly"  # no replay DAG has it: the DAG itself
    assert [dag_for(e) for e in ("day", "week", "month")] == [
        "movielens_replay_day",
        "movielens_replay_week",
        "movielens_replay_month",
    ]
    with pytest.raises(BackfillError, match="EVERY must be one of day, week, month"):
        dag_for("year")


def test_dates_must_be_iso_days_named_by_their_variable() -> None:
    assert _day("2016-01-31", "FROM") == date(2016, 1, 31)
    with pytest.raises(BackfillError, match="TO must be a date as YYYY-MM-DD, not '31/01/2016'"):
        _day("31/01/2016", "TO")


def test_reversed_or_future_ranges_are_refused_before_airflow_starts() -> None:
    with pytest.raises(BackfillError, match=r"FROM \(2018-01-01\) is after TO \(2017-01-01\)"):
        backfill(date(2018, 1, 1), date(2017, 1, 1), "month", {})
    tomorrow = date.today() + timedelta(days=2)
    with pytest.raises(BackfillError, match="in the future"):
        backfill(tomorrow, tomorrow + timedelta(days=30), "month", {})
