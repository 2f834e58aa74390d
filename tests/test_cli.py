"""The whole job in one process (no Airflow), on synthetic files."""

from pathlib import Path

import duckdb
import pytest

from pipeline.cli import main
from tests.synthetic import make, write_ml1m

N = 10


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    return write_ml1m(tmp_path / "ml1m", make(n_users=30, n_movies=40, per_user=15))


def _run(dataset: Path, wh: Path, run_id: str) -> int:
    return main(
        [
            "run",
            "--dataset",
            str(dataset),
            "--warehouse",
            str(wh),
            "--run-id",
            run_id,
            "--max-epochs",
            "2",
            "--top-n",
            str(N),
            "--device",
            "cpu",
        ]
    )


def test_every_user_gets_n_unseen_known_movies_and_metrics_are_recorded(dataset: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert _run(dataset, wh, "run-1") == 0
    con = duckdb.connect(str(wh), read_only=True)
    per_user = con.execute("SELECT user_id, count(*) FROM current_recommendations GROUP BY ALL").fetchall()
    assert len(per_user) == 30 and {n for _, n in per_user} == {N}
    seen = con.execute(
        "SELECT count(*) FROM current_recommendations r JOIN ratings s USING (user_id, movie_id)"
    ).fetchall()[0][0]
    unknown = con.execute(
        "SELECT count(*) FROM current_recommendations WHERE movie_id NOT IN (SELECT movie_id FROM movies)"
    ).fetchall()[0][0]
    assert seen == 0 and unknown == 0
    run = con.execute(
        "SELECT model, device, seconds, metrics->>'rmse', metrics->>'ndcg@10' FROM model_runs WHERE run_id = 'run-1'"
    ).fetchall()
    assert run and run[0][0] == "neumf_features" and run[0][1] == "cpu" and run[0][2] > 0
    assert 0 < float(run[0][3]) < 1 and 0 < float(run[0][4]) <= 1


def test_bad_data_exits_2_raises_alert_and_keeps_published_recommendations(dataset: Path, tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    assert _run(dataset, wh, "good") == 0
    with duckdb.connect(str(wh), read_only=True) as con:
        before = con.execute("SELECT * FROM current_recommendations ORDER BY user_id, rank").fetchall()
    with open(dataset / "movies.dat", "a", encoding="latin-1") as fh:
        fh.write("1::Another Film (1999)::Drama\n")  # movie id 1 twice: the catalogue is ambiguous (critical)
    assert _run(dataset, wh, "bad") == 2
    with duckdb.connect(str(wh), read_only=True) as con:
        after = con.execute("SELECT * FROM current_recommendations ORDER BY user_id, rank").fetchall()
        alerts = con.execute(
            "SELECT column_name, severity, sample_values FROM dq_alerts WHERE run_id = 'bad'"
        ).fetchall()
    assert after == before
    assert [(c, sev) for c, sev, samples in alerts if "1" in samples] == [("movie_id", "critical")]
