"""Data-quality alerts: rows in the warehouse, and a notification that reaches a person.

Every check goes to dq_results, every failed check to dq_alerts, every
quarantined row to dq_quarantine, every nulled value to dq_nulled. One
notification per run (not one per rule, so a bad night is one page, not
fifty) goes through the channels named
in MOVIELENS_ALERT_CHANNELS: `log` (the default), `email` (SMTP) and
`webhook` (a Slack-compatible JSON POST). A channel that cannot be reached is
logged and does not hide the alert from the other channels. Task failures
(Airflow's on_failure_callback) use the same channels.
"""

from __future__ import annotations

import json
import logging
import os
import smtplib
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage

import duckdb
import pandas as pd

from pipeline.validate import CheckResult
from pipeline.warehouse import transaction

log = logging.getLogger("pipeline.alerts")

CHANNELS = ("log", "email", "webhook")
INSERT_ALERT = (
    "INSERT INTO dq_alerts (run_id, raised_at, file, suite, expectation, column_name, severity, "
    "unexpected_count, sample_values, sample_lines, message, docs_url) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


@dataclass
class AlertSettings:
    """Where notifications go; read from the environment so Airflow and the CLI agree."""

    channels: tuple[str, ...] = ("log",)
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)  # secrets stay out of any repr or log
    smtp_starttls: bool = False
    mail_from: str = "movielens-pipeline@localhost"
    mail_to: tuple[str, ...] = ()
    webhook_url: str | None = field(default=None, repr=False)  # its path is the token (Slack's)
    timeout_s: float = 10.0

    def redact(self, text: str) -> str:
        """`text` with the password and the webhook URL (its token) replaced: an error a channel
        raises can quote them (urllib quotes a malformed URL whole)."""
        for secret in (self.smtp_password, self.webhook_url):
            if secret:
                text = text.replace(secret, "***")
        return text

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> AlertSettings:
        env = dict(os.environ if env is None else env)
        channels = tuple(c.strip() for c in env.get("MOVIELENS_ALERT_CHANNELS", "log").split(",") if c.strip())
        unknown = [c for c in channels if c not in CHANNELS]
        if unknown:
            raise ValueError(
                f"MOVIELENS_ALERT_CHANNELS: unknown channel(s) {', '.join(unknown)} (allowed: {', '.join(CHANNELS)})"
            )
        settings = cls(
            channels=channels or ("log",),
            smtp_host=env.get("MOVIELENS_SMTP_HOST", "localhost"),
            smtp_port=int(env.get("MOVIELENS_SMTP_PORT", "25")),
            smtp_user=env.get("MOVIELENS_SMTP_USER") or None,
            smtp_password=env.get("MOVIELENS_SMTP_PASSWORD") or None,
            smtp_starttls=env.get("MOVIELENS_SMTP_STARTTLS", "").lower() in ("1", "true", "yes"),
            mail_from=env.get("MOVIELENS_ALERT_FROM", "movielens-pipeline@localhost"),
            mail_to=tuple(a.strip() for a in env.get("MOVIELENS_ALERT_TO", "").split(",") if a.strip()),
            webhook_url=env.get("MOVIELENS_ALERT_WEBHOOK_URL") or None,
        )
        if "email" in settings.channels and not settings.mail_to:
            raise ValueError("the email alert channel needs MOVIELENS_ALERT_TO (comma-separated addresses)")
        if "webhook" in settings.channels and not settings.webhook_url:
            raise ValueError("the webhook alert channel needs MOVIELENS_ALERT_WEBHOOK_URL")
        return settings


@dataclass
class Alert:
    """One notification: a headline, its severity, and one line per finding."""

    run_id: str
    severity: str  # critical | warning
    headline: str
    details: list[str] = field(default_factory=list)
    link: str | None = None

    @property
    def subject(self) -> str:
        return f"[movielens {self.severity.upper()}] {self.headline}"

    def text(self) -> str:
        body = "\n".join(f"- {d}" for d in self.details)
        link = f"\nData Docs: {self.link}" if self.link else ""
        return f"{self.subject}\nrun: {self.run_id}\n{body}{link}"


def record_checks(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    results: Sequence[CheckResult],
    quarantine: pd.DataFrame | None = None,
    nulled: pd.DataFrame | None = None,
) -> int:
    """Write checks, alerts, quarantined rows and nulled values for `run_id` in one transaction;
    return the alert count."""
    now = datetime.now(UTC).replace(tzinfo=None)
    failures = [r for r in results if not r.success]
    with transaction(con):
        for table in ("dq_results", "dq_quarantine", "dq_nulled"):
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
        # a retried run's earlier stop at fetch stays on record: it happened, and was fixed
        con.execute("DELETE FROM dq_alerts WHERE run_id = ? AND suite <> ?", [run_id, FETCH_SUITE])
        if results:
            con.executemany(
                "INSERT INTO dq_results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (
                        run_id,
                        now,
                        r.file,
                        r.suite,
                        r.expectation,
                        r.column,
                        r.rule,
                        r.severity,
                        r.success,
                        r.element_count,
                        r.unexpected_count,
                    )
                    for r in results
                ],
            )
        if failures:
            con.executemany(
                INSERT_ALERT,
                [
                    (
                        run_id,
                        now,
                        r.file,
                        r.suite,
                        r.expectation,
                        r.column,
                        r.severity,
                        r.unexpected_count,
                        r.samples,
                        r.lines,
                        r.message(),
                        r.docs_url,
                    )
                    for r in failures
                ],
            )
        for table, frame, columns in (
            ("dq_quarantine", quarantine, "file, kind, line, rule, record"),
            ("dq_nulled", nulled, 'file, kind, line, "column", rule, value'),
        ):
            if frame is not None and len(frame):
                con.register("rows_frame", frame)
                con.execute(f"INSERT INTO {table} SELECT ?, ?, {columns} FROM rows_frame", [run_id, now])
                con.unregister("rows_frame")
    return len(failures)


def validation_alert(run_id: str, results: Sequence[CheckResult], docs_index: str | None = None) -> Alert | None:
    """The run's one notification for its failed checks (None when every check passed)."""
    failures = [r for r in results if not r.success]
    if not failures:
        return None
    critical = [f for f in failures if f.severity == "critical"]
    severity = "critical" if critical else "warning"
    files = sorted({f.file.rsplit("/", 1)[-1] for f in failures})
    outcome = "run stopped, nothing published" if critical else "run continues"
    headline = f"{len(failures)} data-quality rule(s) failed in {', '.join(files)} ({outcome})"
    details = [f"[{f.severity}] {f.message()}" for f in sorted(failures, key=lambda f: f.severity != "critical")]
    return Alert(run_id, severity, headline, details, docs_index)


def notify(alert: Alert, settings: AlertSettings | None = None) -> list[str]:
    """Send `alert` through every configured channel; return the channels that failed."""
    settings = settings or AlertSettings.from_env()
    failed = []
    for channel in settings.channels:
        try:
            {"log": _to_log, "email": _to_email, "webhook": _to_webhook}[channel](alert, settings)
        except Exception as exc:  # one dead channel must not silence the others
            log.error("alert channel %s failed: %s", channel, settings.redact(str(exc)))
            failed.append(channel)
    return failed


def _to_log(alert: Alert, settings: AlertSettings) -> None:
    level = logging.ERROR if alert.severity == "critical" else logging.WARNING
    log.log(level, "DATA-QUALITY ALERT %s", alert.text())


def _to_email(alert: Alert, settings: AlertSettings) -> None:
    message = EmailMessage()
    message["Subject"] = alert.subject
    message["From"] = settings.mail_from
    message["To"] = ", ".join(settings.mail_to)
    message.set_content(alert.text())
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout_s) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_user:
            smtp.login(settings.smtp_user, settings.smtp_password or "")
        smtp.send_message(message)


def _to_webhook(alert: Alert, settings: AlertSettings) -> None:
    """Slack's incoming-webhook shape: `text` for notifications, `blocks` for the message body."""
    payload = {
        "text": alert.subject,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": alert.subject[:150]}},
            {"type": "section", "text": {"type": "mrkdwn", "text": alert.text()[:3000]}},
        ],
    }
    request = urllib.request.Request(
        str(settings.webhook_url),
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:
        if response.status >= 300:
            raise RuntimeError(f"webhook answered HTTP {response.status}")


def task_failure_alert(context: dict) -> Alert:
    """An Alert for an Airflow task that failed (for on_failure_callback)."""
    ti = context.get("task_instance") or context.get("ti")
    dag_run = context.get("dag_run")
    run_id = getattr(dag_run, "run_id", None) or str(context.get("run_id", "?"))
    task = getattr(ti, "task_id", "?")
    dag = getattr(ti, "dag_id", "?")
    error = context.get("exception")
    details = [f"task {dag}.{task} failed (try {getattr(ti, 'try_number', '?')})", f"error: {error}"[:2000]]
    log_url = getattr(ti, "log_url", None)
    return Alert(run_id, "critical", f"task {task} of {dag} failed", details, log_url)


FETCH_SUITE = "fetch"  # the dq_alerts suite of problems that stop a run before validation


def fetch_alert(run_id: str, file: str, rule: str, message: str) -> Alert:
    """The Alert for an input problem found before validation could start (a missing file, an
    unrecognised layout, a malformed spec, an unreadable file, a failed download)."""
    return Alert(run_id, "critical", f"input problem in {file} ({rule}): run stopped, nothing published", [message])


def record_fetch_alert(con: duckdb.DuckDBPyConnection, alert: Alert, file: str, rule: str) -> None:
    """Its critical dq_alerts row: the alert table records every input problem that stopped a run,
    not only the ones Great Expectations found."""
    now = datetime.now(UTC).replace(tzinfo=None)
    with transaction(con):
        con.execute("DELETE FROM dq_alerts WHERE run_id = ? AND suite = ?", [alert.run_id, FETCH_SUITE])
        row = [alert.run_id, now, file, FETCH_SUITE, rule, None, "critical", None, None, None, alert.details[0], None]
        con.execute(INSERT_ALERT, row)


def champion_alert(con: duckdb.DuckDBPyConnection, run_id: str, verdict: dict) -> Alert:
    """A dq_alerts row and the Alert for a champion that was held back by the quality gate."""
    now = datetime.now(UTC).replace(tzinfo=None)
    con.execute(
        "DELETE FROM dq_alerts WHERE run_id = ? AND suite = 'model_quality'",
        [run_id],
    )
    con.execute(
        INSERT_ALERT,
        [
            run_id,
            now,
            "model_runs",
            "model_quality",
            "champion_not_worse_than_published",
            verdict["metric"],
            "critical",
            None,
            [verdict["model"], f"{verdict['value']:.4f}"],
            None,
            verdict["message"],
            None,  # no Data Docs page: the evidence is in model_runs
        ],
    )
    previous = verdict.get("previous") or {}
    details = [
        verdict["message"],
        f"published champion: {previous.get('model')} (run {previous.get('run_id')})",
    ]
    return Alert(run_id, "critical", f"model quality gate: {verdict['model']} not published", details)
