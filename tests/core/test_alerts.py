"""Alerts reach people: a real local SMTP server and a real local HTTP server receive them."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from pipeline.core import alerts, warehouse
from pipeline.core.alerts import Alert, AlertSettings, notify
from pipeline.ingest import dq_tables
from pipeline.ingest.dq_tables import validation_alert
from pipeline.ingest.validate import CheckResult


class _Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Controller, _Inbox]]:
    inbox = _Inbox()
    with socket.socket() as probe:  # aiosmtpd needs a concrete port to check it is up
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield controller, inbox
    controller.stop()


def _failure(severity: str = "critical") -> CheckResult:
    return CheckResult(
        file="/data/ml-1m/ratings.dat",
        suite="ratings.content",
        expectation="expect_column_values_to_be_in_set",
        column="movie_id",
        rule="every rated movie is in the movies file",
        severity=severity,
        success=False,
        element_count=1000,
        unexpected_count=3,
        samples=["999"],
        lines=[17],
    )


def test_email_alert_is_delivered_to_a_real_smtp_server(smtp_server) -> None:
    controller, inbox = smtp_server
    settings = AlertSettings.from_env(
        {
            "MOVIELENS_ALERT_CHANNELS": "email",
            "MOVIELENS_SMTP_HOST": "127.0.0.1",
            "MOVIELENS_SMTP_PORT": str(controller.port),
            "MOVIELENS_ALERT_TO": "oncall@example.org, data@example.org",
        }
    )
    alert = validation_alert("nightly-1", [_failure()], "file:///var/data_docs/nightly-1/index.html")
    assert notify(alert, settings) == []
    assert len(inbox.messages) == 1
    recipients, message = inbox.messages[0]
    assert recipients == ["oncall@example.org", "data@example.org"]
    assert message["Subject"].startswith("[movielens CRITICAL]") and "ratings.dat" in message["Subject"]
    body = message.get_payload(decode=True).decode()
    assert "every rated movie is in the movies file" in body and "nightly-1" in body and "data_docs" in body


def test_webhook_alert_posts_slack_compatible_json(webhook_server) -> None:
    url, received = webhook_server
    settings = AlertSettings.from_env({"MOVIELENS_ALERT_CHANNELS": "webhook,log", "MOVIELENS_ALERT_WEBHOOK_URL": url})
    assert notify(validation_alert("nightly-2", [_failure("warning")]), settings) == []
    assert len(received) == 1 and received[0]["content_type"] == "application/json"
    payload = received[0]["json"]
    assert payload["text"].startswith("[movielens WARNING]")
    assert payload["blocks"][0]["type"] == "header"
    assert (
        "ratings.dat" in payload["blocks"][1]["text"]["text"] and "line(s) [17]" in payload["blocks"][1]["text"]["text"]
    )


def test_dead_channel_is_reported_and_does_not_silence_the_others(webhook_server, caplog) -> None:
    url, received = webhook_server
    settings = AlertSettings.from_env(
        {
            "MOVIELENS_ALERT_CHANNELS": "email,webhook",
            "MOVIELENS_SMTP_HOST": "127.0.0.1",
            "MOVIELENS_SMTP_PORT": "1",  # nothing listens there
            "MOVIELENS_ALERT_TO": "oncall@example.org",
        }
        | {"MOVIELENS_ALERT_WEBHOOK_URL": url}
    )
    assert notify(Alert("r", "critical", "boom", ["detail"]), settings) == ["email"]
    assert len(received) == 1 and "alert channel email failed" in caplog.text


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MOVIELENS_ALERT_CHANNELS": "pager"}, "unknown channel"),
        ({"MOVIELENS_ALERT_CHANNELS": "email"}, "MOVIELENS_ALERT_TO"),
        ({"MOVIELENS_ALERT_CHANNELS": "webhook"}, "MOVIELENS_ALERT_WEBHOOK_URL"),
    ],
)
def test_misconfigured_channels_fail_with_the_variable_to_set(env: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AlertSettings.from_env(env)


def test_no_failures_means_no_notification() -> None:
    passed = CheckResult("f", "s", "e", None, "r", "critical", True)
    assert validation_alert("r", [passed]) is None


def test_alert_rows_carry_severity_samples_lines_and_docs_link(tmp_path: Path) -> None:
    con = warehouse.connect(tmp_path / "wh.duckdb")
    failure = _failure("warning")
    failure.docs_url = "file:///docs/ratings/content.html"
    assert dq_tables.record_checks(con, "run-1", [failure]) == 1
    row = con.execute(
        "SELECT file, expectation, severity, unexpected_count, sample_values, sample_lines, docs_url FROM dq_alerts"
    ).fetchall()
    assert row == [
        (
            "/data/ml-1m/ratings.dat",
            "expect_column_values_to_be_in_set",
            "warning",
            3,
            ["999"],
            [17],
            "file:///docs/ratings/content.html",
        )
    ]


def test_task_failure_callback_alert_names_task_and_error() -> None:
    class TI:
        task_id, dag_id, try_number, log_url = "train", "movielens_nightly", 1, "http://airflow/log"

    class Run:
        run_id = "scheduled__2026-11-23"

    alert = alerts.task_failure_alert({"task_instance": TI(), "dag_run": Run(), "exception": RuntimeError("CUDA OOM")})
    assert alert.severity == "critical" and "train" in alert.headline and "CUDA OOM" in alert.text()
    assert alert.run_id == "scheduled__2026-11-23" and alert.link == "http://airflow/log"


PASSWORD, TOKEN = "pw-S3CRET-7181", "T0KEN-S3CRET-9464"


def test_a_channel_error_quoting_the_webhook_url_is_logged_without_it(caplog) -> None:
    settings = AlertSettings.from_env(
        {
            "MOVIELENS_ALERT_CHANNELS": "webhook",
            # no scheme: urllib's error quotes the whole URL, token included
            "MOVIELENS_ALERT_WEBHOOK_URL": f"hooks.example.org/services/{TOKEN}",
            "MOVIELENS_SMTP_PASSWORD": PASSWORD,
        }
    )
    assert notify(Alert("r", "critical", "boom", ["detail"]), settings) == ["webhook"]
    assert "alert channel webhook failed" in caplog.text and "***" in caplog.text
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(settings) and PASSWORD not in repr(settings)


def test_secrets_never_reach_the_logs_tables_report_or_data_docs_of_a_run(
    webhook_server, tmp_path: Path, isolated_var_dir: Path, monkeypatch, capfd, caplog
) -> None:
    import duckdb

    from pipeline.stages.cli import main
    from tests.support.synthetic import make, write_ml1m

    url, received = webhook_server
    monkeypatch.setenv("MOVIELENS_ALERT_CHANNELS", "log,email,webhook")
    monkeypatch.setenv("MOVIELENS_ALERT_WEBHOOK_URL", f"{url}/{TOKEN}")
    monkeypatch.setenv("MOVIELENS_ALERT_TO", "oncall@example.org")
    monkeypatch.setenv("MOVIELENS_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("MOVIELENS_SMTP_PORT", "1")  # nothing listens: the email channel fails and is logged
    monkeypatch.setenv("MOVIELENS_SMTP_USER", "pipeline")
    monkeypatch.setenv("MOVIELENS_SMTP_PASSWORD", PASSWORD)
    folder = write_ml1m(tmp_path / "ml1m", make(n_users=30, n_movies=40, per_user=15))
    with open(folder / "ratings.dat", "a", encoding="latin-1") as fh:
        fh.write("1::2\n")  # a truncated line: quarantined, and a warning alert goes out
    wh = tmp_path / "wh.duckdb"
    args = ["run", "--dataset", str(folder), "--warehouse", str(wh), "--models", "most_popular,biased_mf"]
    assert main([*args, "--max-epochs", "1", "--device", "cpu", "--run-id", "secretive"]) == 0
    assert len(received) == 1  # the webhook, token and all, was used
    out = capfd.readouterr()
    written = [out.out, out.err, caplog.text]  # the log, wherever pytest routed it
    for path in [*isolated_var_dir.rglob("*"), *tmp_path.glob("wh*")]:
        if path.is_file() and path.suffix != ".duckdb":
            written.append(path.read_bytes().decode("utf-8", "replace"))
    with duckdb.connect(str(wh), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall():
            written.append(str(con.execute(f'SELECT * FROM "{table}"').fetchall()))
    assert "alert channel email failed" in "".join(written)  # the scan reads what the run logged
    leaks = [i for i, text in enumerate(written) if PASSWORD in text or TOKEN in text]
    assert not leaks, f"secrets in {leaks}"
