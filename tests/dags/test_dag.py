"""The DAG: parses cleanly with no work at import, and runs for real through Airflow."""

import ast
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from pipeline.core.run_folder import RunFolder
from tests.conftest import REPO, shared_dataset
from tests.support.synthetic import make, write_ml1m

DAG_FILE = REPO / "dags" / "movielens_nightly.py"
CHAIN = ["fetch", "validate", "load", "forward_evaluate", "features", "split"]


def test_dag_file_imports_nothing_heavy_at_parse_time() -> None:
    tree = ast.parse(DAG_FILE.read_text())
    top_level = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert {m.split(".")[0] for m in top_level} <= {"__future__", "os", "datetime", "pendulum", "airflow", "pipeline"}
    assert {m for m in top_level if m.startswith("pipeline")} == {"pipeline.core.config", "pipeline.models.registry"}
    # and pipeline.core.config itself stays light: standard library only (the registry's own test
    # holds it to names: tests/models/test_registry.py)
    config = ast.parse((REPO / "pipeline" / "core" / "config.py").read_text())
    imported = {
        (n.module if isinstance(n, ast.ImportFrom) else a.name).split(".")[0]
        for n in config.body
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert imported <= {"__future__", "collections", "datetime", "os", "re", "dataclasses", "pathlib"}


def test_dag_loads_with_the_expected_chain_and_settings() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert bag.import_errors == {}
    dag = bag.get_dag("movielens_nightly")
    assert dag.max_active_runs == 1 and dag.catchup is False
    order = [t.task_id for t in dag.topological_sort()]
    assert order[: len(CHAIN)] == CHAIN
    for upstream, downstream in itertools.pairwise(CHAIN):
        assert dag.get_task(downstream).upstream_task_ids == {upstream}
    # training fans out over the run's models, scoring over user shards; each fan-in waits for all
    mapped = {t.task_id for t in dag.tasks if type(t).__name__.endswith("MappedOperator")}
    assert mapped == {"train_model", "score_shard"}
    upstream = {t: dag.get_task(t).upstream_task_ids for t in ("model_names", "train_model", "evaluate")}
    assert upstream == {
        "model_names": {"split"},
        "train_model": {"split", "model_names"},
        "evaluate": {"split", "train_model"},
    }
    assert dag.get_task("fit_champion").upstream_task_ids == {"evaluate"}
    assert dag.get_task("score_shards").upstream_task_ids == {"fit_champion"}
    assert dag.get_task("score_shard").upstream_task_ids == {"fit_champion", "score_shards"}
    assert dag.get_task("publish").upstream_task_ids == {"fit_champion", "score_shard"}
    assert dag.get_task("report").upstream_task_ids == {"publish"}
    # downstream DAGs can be scheduled on the table consumers read
    assert [a.name for a in dag.get_task("publish").outlets] == ["movielens_current_recommendations"]
    assert order[-2:] == ["publish", "report"]
    assert dag.get_task("validate").retries == 0
    assert dag.get_task("fetch").retries > 0
    assert set(dag.params.keys()) == {"dataset", "models", "top_n", "max_epochs", "device", "users_per_shard"}


def test_nightly_dag_trains_the_competing_set_and_heavy_tasks_share_the_training_pool() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from pipeline.core.config import NIGHTLY_MODELS, TRAINING_POOL

    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("movielens_nightly")
    assert dag.params["models"] == list(NIGHTLY_MODELS)
    assert {"mlp", "dnn_content", "svd", "ncf_tags"}.isdisjoint(NIGHTLY_MODELS)
    pooled = {t.task_id for t in dag.tasks if t.pool == TRAINING_POOL}
    assert pooled == {"train_model", "fit_champion", "score_shard"}


def test_every_task_that_opens_the_warehouse_is_in_its_one_slot_pool_in_every_dag() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from pipeline.core.config import WAREHOUSE_POOL

    writers = {"validate", "load", "forward_evaluate", "features", "evaluate", "publish", "report"}
    bag = DagBag(dag_folder=str(DAG_FILE))
    for dag_id in bag.dag_ids:
        dag = bag.get_dag(dag_id)
        assert {t.task_id for t in dag.tasks if t.pool == WAREHOUSE_POOL} == writers & set(dag.task_ids), dag_id


def test_evaluation_dag_compares_every_model_weekly_publishes_nothing_and_starts_paused() -> None:
    from airflow.dag_processing.dagbag import DagBag

    from pipeline.core.config import TRAINING_POOL
    from pipeline.models.registry import NAMES as ALL_MODELS

    dag = DagBag(dag_folder=str(DAG_FILE)).get_dag("movielens_evaluation")
    assert dag.is_paused_upon_creation is True and dag.catchup is False and dag.max_active_runs == 1
    assert dag.schedule == "0 6 * * 0"  # weekly, Sunday 06:00 UTC, after that night's nightly run
    order = [t.task_id for t in dag.topological_sort()]
    assert order == [*CHAIN[:3], *CHAIN[4:], "model_names", "train_model", "evaluate", "report"]
    assert not any(t.outlets for t in dag.tasks)  # nothing downstream is told of new recommendations
    assert dag.params["models"] == list(ALL_MODELS)
    assert set(dag.params.keys()) == {"dataset", "models", "max_epochs", "device"}
    assert dag.get_task("train_model").pool == TRAINING_POOL


def test_replay_dags_have_the_nightly_tasks_and_take_backfill_runs_only() -> None:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    nightly = bag.get_dag("movielens_nightly")
    schedules = {every: bag.get_dag(f"movielens_replay_{every}") for every in ("day", "week", "month")}
    assert set(bag.dag_ids) == {
        "movielens_nightly",
        "movielens_evaluation",
        *(f"movielens_replay_{e}" for e in schedules),
    }
    assert {e: d.schedule for e, d in schedules.items()} == {"day": "@daily", "week": "@weekly", "month": "@monthly"}
    for replay in schedules.values():
        assert {t.task_id for t in replay.tasks} == {t.task_id for t in nightly.tasks}
        assert replay.max_active_runs == 1 and replay.catchup is False
        assert {str(t.value) for t in replay.allowed_run_types} == {"backfill", "scheduled"}  # no manual "as of now"
        assert replay.start_date.year == 2100  # the scheduler never creates a run of its own
        assert "replay" in replay.tags
    assert nightly.allowed_run_types is None and nightly.start_date.year < 2100


def _airflow_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "MOVIELENS_WAREHOUSE": str(tmp_path / "wh.duckdb"),
        "MOVIELENS_VAR_DIR": str(tmp_path / "var"),
    }


@pytest.mark.integration
def test_airflow_run_on_critical_bad_data_fails_validate_and_pages_the_webhook(tmp_path: Path, webhook_server) -> None:
    url, received = webhook_server
    dataset = write_ml1m(tmp_path / "ml1m", make(n_users=30, n_movies=15, per_user=10))
    with open(dataset / "movies.dat", "a", encoding="latin-1") as fh:
        fh.write("3::Same Id Twice (1999)::Drama\n")
    env = _airflow_env(tmp_path) | {"MOVIELENS_ALERT_CHANNELS": "log,webhook", "MOVIELENS_ALERT_WEBHOOK_URL": url}
    airflow = Path(sys.executable).parent / "airflow"
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
    conf = json.dumps({"dataset": str(dataset), "max_epochs": 1, "device": "cpu"})
    done = subprocess.run(
        [str(airflow), "dags", "test", "movielens_nightly", "--conf", conf], env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 or "failed" in (done.stdout + done.stderr).lower()
    texts = [r["json"]["text"] for r in received]
    assert any(t.startswith("[movielens CRITICAL]") and "movies.dat" in t for t in texts), texts  # the DQ alert
    assert any("task validate of movielens_nightly failed" in t for t in texts), texts  # the failure callback
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM published_runs").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM dq_alerts WHERE severity = 'critical'").fetchall()[0][0] >= 1


@pytest.mark.integration
def test_airflow_dags_test_on_ml100k_publishes_n_unseen_recommendations_for_every_user(tmp_path: Path) -> None:
    dataset = shared_dataset("ml-100k")
    airflow = Path(sys.executable).parent / "airflow"
    env = _airflow_env(tmp_path)
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
    models = ["most_popular", "ease", "svd", "neumf_features", "sasrec"]
    conf = {"dataset": str(dataset), "top_n": 20, "max_epochs": 2, "device": "cpu", "models": models}
    conf = json.dumps(conf | {"users_per_shard": 400})  # 943 users: three mapped score_shard tasks
    done = subprocess.run(
        [str(airflow), "dags", "test", "movielens_nightly", "--conf", conf], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    con = duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True)
    counts = con.execute(
        "SELECT count(*), min(n), max(n) FROM (SELECT user_id, count(*) n FROM current_recommendations GROUP BY 1)"
    ).fetchall()[0]
    assert counts == (943, 20, 20)
    assert con.execute(
        "SELECT count(*) FROM current_recommendations JOIN ratings USING (user_id, movie_id)"
    ).fetchall() == [(0,)]
    assert con.execute(
        "SELECT count(*) FROM current_recommendations r LEFT JOIN movies m USING (movie_id) WHERE m.title IS NULL"
    ).fetchall() == [(0,)]
    # the nightly job decides on validation alone: protocol B only, its test figures from the tuned model
    runs = con.execute("SELECT model, protocol, is_champion, metrics, job, test_from FROM model_runs").fetchall()
    assert sorted(m for m, *_ in runs) == sorted(models)
    assert {(p, j, t) for _, p, _, _, j, t in runs} == {("full_ranking", "nightly", "tuned model on test")}
    full = {m: json.loads(x) for m, _, _, x, _, _ in runs}
    assert all(0 < full[m]["test"]["ndcg@10"] < 1 and "refit" not in full[m] for m in models)
    champion = {m for m, _, c, *_ in runs if c}
    assert len(champion) == 1
    (champion,) = champion
    assert con.execute("SELECT DISTINCT model FROM current_recommendations").fetchall() == [(champion,)]
    # whatever ranks, every row has a predicted rating (from the lowest validation RMSE) and a real reason
    rater = con.execute("SELECT DISTINCT model FROM model_runs WHERE is_rater").fetchall()
    assert con.execute("SELECT rating_model FROM published_runs").fetchall() == rater and rater[0][0] in models
    nulls, generic = con.execute(
        "SELECT count(*) FILTER (WHERE predicted_rating IS NULL), "
        "count(*) FILTER (WHERE reason = 'matches your profile') FROM current_recommendations"
    ).fetchall()[0]
    assert nulls == 0 and generic < 0.01 * 943 * 20
    assert con.execute("SELECT count(*) FROM dq_results WHERE success").fetchall()[0][0] > 30
    run = RunFolder(next((tmp_path / "var" / "runs").iterdir()))
    # nothing trained only to be thrown away: production fits of the champion and the rater alone
    fitted = {m for m in models if run.production_model(m).exists()}
    assert fitted == {champion, rater[0][0]}
    # sasrec's production fit continues its tuned weights (warm_epochs); the others refit from scratch
    starts = {m: run.read(run.production_fit(m))["start"] for m in fitted}
    assert starts == {m: "tuned weights" if m == "sasrec" else "scratch" for m in fitted}
    # every task's seconds: last in the log, in report.json and on the HTML page
    output = done.stdout + done.stderr
    tasks = [t["task"] for t in run.read(run.report_summary)["timings"]["tasks"]]
    expected = ["fetch", "validate", "load", "forward_evaluate", "features", "split"]
    expected += [f"train_model[{m}]" for m in models] + ["evaluate", "fit_champion"]
    expected += [f"score_shard[{i}]" for i in range(3)] + ["publish", "report"]
    assert sorted(tasks) == sorted(expected)
    table = output[output.rindex("seconds per task") :]
    assert all(t in table for t in expected) and "wall" in table
    assert 'id="timings"' in run.report_page.read_text()
    assert sorted(run.scores.iterdir()) == [run.shard(i) for i in range(3)]
    # the report task wrote the run's page, logged its path and recorded it for every model row
    page = run.report_page
    assert con.execute("SELECT DISTINCT report_path FROM model_runs").fetchall() == [(str(page),)]
    assert page.is_file() and f"report: {page}" in done.stdout + done.stderr
    # consumers read the serving file, which holds the same current run
    with duckdb.connect(str(tmp_path / "wh.serving.duckdb"), read_only=True) as serving:
        assert serving.execute("SELECT count(*) FROM current_recommendations").fetchall() == [(943 * 20,)]


@pytest.mark.integration
def test_airflow_evaluation_dag_compares_both_protocols_with_refits_and_publishes_nothing(tmp_path: Path) -> None:
    dataset = write_ml1m(tmp_path / "ml1m", make(n_users=60, n_movies=40, per_user=15))
    airflow = Path(sys.executable).parent / "airflow"
    env = _airflow_env(tmp_path)
    subprocess.run([str(airflow), "db", "migrate"], env=env, check=True, capture_output=True)
    models = ["most_popular", "ease", "biased_mf"]
    conf = json.dumps({"dataset": str(dataset), "max_epochs": 2, "device": "cpu", "models": models})
    done = subprocess.run(
        [str(airflow), "dags", "test", "movielens_evaluation", "--conf", conf], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM published_runs").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM recommendations").fetchall() == [(0,)]
        rows = con.execute("SELECT model, protocol, job, test_from, metrics FROM model_runs").fetchall()
    assert sorted((m, p) for m, p, *_ in rows) == sorted((m, p) for m in models for p in ("notebook", "full_ranking"))
    assert {(j, t) for _, p, j, t, _ in rows if p == "full_ranking"} == {("evaluation", "refit on train")}
    refit = json.loads(next(x for m, p, *_, x in rows if m == "biased_mf" and p == "full_ranking"))["refit"]
    assert refit["epochs"] >= 1  # the test figures' model was refit on train for the epochs validation chose
    assert not (tmp_path / "wh.serving.duckdb").exists()
    run = RunFolder(next((tmp_path / "var" / "runs").iterdir()))
    models = run.load_config().models
    assert not run.scores.exists() and not any(run.production_model(m).exists() for m in models)
    page = run.report_page.read_text()
    assert "an evaluation run publishes nothing" in page and "refit on train" in page
