"""`flask inbox send-mail` and `flask inbox digest`: the same operations the app runs."""

from __future__ import annotations

from datetime import timedelta

import click
from flask import current_app

from approval import outbox
from approval.extensions import db
from approval.ops import notifications

from . import bp


@bp.cli.command("send-mail")
@click.option(
    "--max-age-hours",
    default=int(outbox.DEFAULT_MAX_AGE.total_seconds() // 3600),
    show_default=True,
    type=click.IntRange(min=1),
    help="Give up on mail older than this.",
)
def send_mail(max_age_hours: int) -> None:
    """Send notification mail that is still unsent (after a mail server failure)."""
    if not current_app.config.get("SMTP_URL"):
        raise click.ClickException("GREENLIGHT_SMTP_URL is not set: there is nowhere to send mail")
    report = outbox.send_pending(max_age=timedelta(hours=max_age_hours))
    click.echo(f"{report.sent} sent, {report.failed} failed")
    if report.failed:
        raise click.ClickException(f"mail server problem: {report.last_error}")


@bp.cli.command("digest")
def digest() -> None:
    """Write today's queue digest for each reviewer who asked for it, and mail it."""
    made = notifications.queue_digest()
    db.session.commit()  # mail goes out after this commit
    if not made:
        click.echo("no digest written (the queue is empty, or nobody is due one)")
        return
    unsent = sum(1 for notification in made if notification.emailed_at is None)
    click.echo(f"{len(made)} digest{'s' if len(made) != 1 else ''} written")
    if current_app.config.get("SMTP_URL") and unsent:
        click.echo(f"{unsent} not mailed yet; `flask inbox send-mail` retries", err=True)
