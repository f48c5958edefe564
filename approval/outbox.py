"""The outbox: notifications are mailed by a job after their transaction commits.

`mail_after_commit` enqueues a `send_mail` job for the notification once the session commits
(never if it rolls back). The job talks SMTP in the worker, over a database connection of its
own, so a slow or dead mail server never holds up or undoes the decision that wrote the rows.
A failed send bumps `email_attempts` and keeps `last_email_error`; the job retries with
backoff, and a periodic task (or `flask inbox send-mail`) sweeps up anything left.

Each send first claims its row (a conditional UPDATE of `email_attempts`, committed), so two
senders never mail the same notification twice. The retry command leaves alone rows younger
than RETRY_AFTER: those belong to the request that wrote them, which may still be sending.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import mail
from .clock import utcnow
from .extensions import db
from .jobqueue import enqueue_after_commit
from .models import Notification, User

log = logging.getLogger(__name__)

#: The retry command leaves younger unsent rows to the request that wrote them.
RETRY_AFTER = timedelta(minutes=2)
#: Unsent mail older than this is not sent any more: it would only confuse.
DEFAULT_MAX_AGE = timedelta(days=3)
#: After this many failed attempts a mail is given up (it stays in the inbox).
MAX_ATTEMPTS = 10


def mail_after_commit(session: Session, notification_id: int) -> None:
    """Mail this notification once the session's transaction commits (never if it rolls back)."""
    if smtp_settings() is None:
        return  # in-app only: no job to run
    from .jobs import send_mail  # jobs imports this module

    enqueue_after_commit(session, send_mail, [notification_id])


def smtp_settings() -> mail.SmtpSettings | None:
    """The configured mail server, or None when SMTP_URL is empty (in-app only)."""
    url = current_app.config.get("SMTP_URL") or ""
    return mail.parse_smtp_url(url) if url else None


def _sender(settings: mail.SmtpSettings) -> str:
    if settings.sender:
        return settings.sender
    host = urlsplit(current_app.config["SITE_URL"]).hostname or "localhost"
    if "." not in host or host.replace(".", "").isdigit():
        host = "localhost"
    return f"Greenlight <greenlight@{host}>"


def _message_text(notification: Notification) -> str:
    from .ops.notifications import target  # it imports this module
    from .web import site_url

    lines = [notification.body, ""]
    pointed = target(notification)
    if pointed is not None:
        what = "the queue" if pointed.endpoint == "review.queue" else "the clip"
        url = site_url(pointed.endpoint, **pointed.values) + pointed.anchor
        lines.append(f"Open {what}: {url}")
    lines += ["", "—", f"Your notifications and mail settings: {site_url('inbox.index')}"]
    return "\n".join(lines)


@dataclass
class MailReport:
    sent: int = 0
    failed: int = 0
    #: Why the last failure happened, for the command's output.
    last_error: str | None = None


def send_pending(
    ids: list[int] | None = None, *, max_age: timedelta = DEFAULT_MAX_AGE, retry: bool = False
) -> MailReport:
    """Mail unsent notifications: these ids, or every one due a retry. Never raises MailError.

    With ids, only rows never tried are taken, unless `retry` (the job's later attempts).

    Runs in a session of its own, so it can be called right after another session committed.
    """
    report = MailReport()
    settings = smtp_settings()
    if settings is None:
        return report
    now = utcnow()
    with Session(db.engine, expire_on_commit=False) as session:
        query = (
            select(Notification, User.email)
            .join(User, User.id == Notification.user_id)
            .where(Notification.emailed_at.is_(None), User.active.is_(True))
            .order_by(Notification.id)
        )
        if ids is not None:
            query = query.where(Notification.id.in_(ids))
            if retry:
                query = query.where(Notification.email_attempts < MAX_ATTEMPTS)
            else:
                query = query.where(Notification.email_attempts == 0)
        else:
            query = query.where(
                Notification.created_at <= now - RETRY_AFTER,
                Notification.created_at > now - max_age,
                Notification.email_attempts < MAX_ATTEMPTS,
            )
        claimed = [(row, email) for row, email in session.execute(query) if _claim(session, row)]
        session.commit()
        if not claimed:
            return report
        try:
            with mail.connect(settings) as client:
                for row, email in claimed:
                    message = mail.build_message(
                        sender=_sender(settings),
                        to=email,
                        subject=f"[Greenlight] {row.subject}",
                        body=_message_text(row),
                    )
                    try:
                        mail.send_one(client, message)
                    except mail.MailError as exc:
                        _failed(session, row, str(exc), report)
                    else:
                        _sent(session, row, report)
                    session.commit()
        except mail.MailError as exc:  # no connection: every claimed row failed alike
            for row, _ in claimed:
                if row.emailed_at is None and row.last_email_error is None:
                    _failed(session, row, str(exc), report)
            session.commit()
    return report


def _claim(session: Session, row: Notification) -> bool:
    """Take this row for one attempt; False if another sender took it first."""
    result = session.execute(
        update(Notification)
        .where(
            Notification.id == row.id,
            Notification.emailed_at.is_(None),
            Notification.email_attempts == row.email_attempts,
        )
        .values(email_attempts=row.email_attempts + 1, last_email_error=None)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    row.email_attempts += 1
    row.last_email_error = None
    return True


def _sent(session: Session, row: Notification, report: MailReport) -> None:
    row.emailed_at = utcnow()
    session.execute(
        update(Notification)
        .where(Notification.id == row.id)
        .values(emailed_at=row.emailed_at, last_email_error=None)
        .execution_options(synchronize_session=False)
    )
    report.sent += 1


def _failed(session: Session, row: Notification, error: str, report: MailReport) -> None:
    log.warning(
        "mail for notification %s (attempt %s) not sent: %s", row.id, row.email_attempts, error
    )
    row.last_email_error = error[:2000]
    session.execute(
        update(Notification)
        .where(Notification.id == row.id)
        .values(last_email_error=row.last_email_error)
        .execution_options(synchronize_session=False)
    )
    report.failed += 1
    report.last_error = error
