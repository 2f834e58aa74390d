"""Alerts: a notification that reaches a person, and the dq_alerts row shape.

What validation writes (dq_results, dq_alerts, dq_quarantine, dq_nulled) is
pipeline.ingest.dq_tables; the champion gate's row is pipeline.evaluation.champion. One
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
from dataclasses import dataclass, field
from email.message import EmailMessage

log = logging.getLogger("pipeline.core.alerts")

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
