"""`flask users …`, `flask audit …`, `flask demo …`: the same operations the admin pages call."""

from __future__ import annotations

import logging
import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from flask.logging import default_handler
from sqlalchemy import func, select

from approval.ops import storage_gc, workflow
from approval.ops.errors import Refused
from approval.ops.people import create_user, issue_password_link, set_active, set_roles

from . import audit, media, provenance_keys
from .extensions import db, storage
from .formatting import format_size
from .models import Clip, Role, User
from .provenance import read_provenance
from .web import password_link_url

ROLE_CHOICE = click.Choice([role.value for role in Role])

# AppGroup wraps every command in the app context, however the command is invoked.
users_cli = AppGroup("users", help="Manage accounts and roles.")
demo_cli = AppGroup("demo", help="Demo accounts for a first look.")
storage_cli = AppGroup("storage", help="Set up clip storage and collect its garbage.")
audit_cli = AppGroup("audit", help="Check and export the decision log.")
provenance_cli = AppGroup("provenance", help="Content Credentials (C2PA): read, release holds.")


def user_or_fail(email: str) -> User:
    """The account with this email, or a CLI error naming it."""
    user = User.by_email(email)
    if user is None:
        raise click.ClickException(f"no account for {email}")
    return user


@contextmanager
def committed() -> Iterator[None]:
    """A command's unit of work: commit once when the block ends; a refusal rolls back and
    is printed as the command's error."""
    try:
        yield
    except Refused as exc:
        db.session.rollback()
        raise click.ClickException(exc.message) from None
    db.session.commit()


@users_cli.command("create")
@click.argument("email")
@click.option("--role", "roles", type=ROLE_CHOICE, multiple=True, required=True)
@click.option("--name", default="", help="Display name (defaults to the email).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(email: str, roles: tuple[str, ...], name: str, password_stdin: bool) -> None:
    """Create an account; without --password-stdin, print a one-time set-password link."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    with committed():
        user = create_user(email, name, [Role(r) for r in roles], actor=None, password=password)
        token = None if password_stdin else issue_password_link(user, actor=None)
    click.echo(f"created {user.email} ({', '.join(sorted(roles))})")
    if token is not None:
        click.echo(f"set-password link (valid 72 h, use once): {password_link_url(token)}")


@users_cli.command("roles")
@click.argument("email")
@click.option("--add", "add", type=ROLE_CHOICE, multiple=True)
@click.option("--remove", "remove", type=ROLE_CHOICE, multiple=True)
def users_roles(email: str, add: tuple[str, ...], remove: tuple[str, ...]) -> None:
    """Grant and withdraw roles."""
    user = user_or_fail(email)
    with committed():
        set_roles(user, add=[Role(r) for r in add], remove=[Role(r) for r in remove], actor=None)
    click.echo(f"{user.email}: {', '.join(sorted(user.roles))}")


@users_cli.command("deactivate")
@click.argument("email")
def users_deactivate(email: str) -> None:
    """Deactivate an account: its sessions and tokens stop working at once."""
    user = user_or_fail(email)
    with committed():
        set_active(user, False, actor=None)
    click.echo(f"{user.email} deactivated")


@users_cli.command("activate")
@click.argument("email")
def users_activate(email: str) -> None:
    """Reactivate a deactivated account."""
    user = user_or_fail(email)
    with committed():
        set_active(user, True, actor=None)
    click.echo(f"{user.email} active")


@users_cli.command("list")
def users_list() -> None:
    """List accounts: email, roles, state."""
    for user in db.session.scalars(select(User).order_by(User.email)):
        state = "active" if user.active else "deactivated"
        pending = "" if user.password_hash else " (password not set)"
        click.echo(f"{user.email}\t{','.join(sorted(user.roles))}\t{state}{pending}")


DEMO_ACCOUNTS = (
    ("admin@example.com", "Ada Admin", Role.ADMIN),
    ("reviewer@example.com", "Rey Reviewer", Role.REVIEWER),
    ("tester@example.com", "Tess Tester", Role.TESTER),
)


@demo_cli.command("seed")
def demo_seed() -> None:
    """Create demo admin, reviewer and tester accounts, only when there are no accounts."""
    if db.session.scalar(select(func.count()).select_from(User)):
        click.echo("accounts exist already; no demo accounts created")
        return
    lines = []
    for email, name, role in DEMO_ACCOUNTS:
        password = secrets.token_urlsafe(12)
        create_user(email, name, [role], actor=None, password=password)
        lines.append(f"  {role.value:<9} {email:<22} {password}")
    db.session.commit()
    click.echo("Demo accounts (shown this once; keep them or invite real people):")
    click.echo("\n".join(lines))


@storage_cli.command("init")
def storage_init() -> None:
    """Create the bucket or folder if missing and allow browser uploads from SITE_URL."""
    for line in storage().init(cors_origins=[current_app.config["SITE_URL"]]):
        click.echo(line)


@storage_cli.command("gc")
@click.option("--delete", is_flag=True, help="Delete what is found (without it: a dry run).")
def storage_gc_command(delete: bool) -> None:
    """List (or delete) stored objects no clip needs, each with the reason."""
    found = storage_gc.collect(storage(), grace=storage_gc.grace_period(), delete=delete)
    for item in found:
        click.echo(f"{item.key}\t{format_size(item.size)}\t{item.why}")
    total = format_size(sum(item.size for item in found))
    noun = "object" if len(found) == 1 else "objects"
    if delete:
        click.echo(f"{len(found)} {noun} deleted ({total}).")
    else:
        click.echo(f"{len(found)} {noun} ({total}) would be deleted; run with --delete to do it.")


class Moment(click.ParamType):
    """An ISO 8601 date or time; without an offset it is UTC."""

    name = "date"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, datetime):
            return value
        try:
            moment = datetime.fromisoformat(str(value).strip())
        except ValueError:
            self.fail(
                f"{value!r} is not a date or time; use YYYY-MM-DD or an ISO 8601 time such as "
                "2026-11-30T12:00Z",
                param,
                ctx,
            )
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


class KeptHead(click.ParamType):
    """A head kept outside the database: a checkpoint line or a bare SHA-256."""

    name = "checkpoint"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, audit.Checkpoint):
            return value
        try:
            return audit.parse_checkpoint(str(value))
        except audit.BadCheckpoint as exc:
            self.fail(str(exc), param, ctx)


@audit_cli.command("verify")
@click.option(
    "--expect-head",
    "expect",
    type=KeptHead(),
    help="A head kept elsewhere (the line `audit checkpoint` prints, or just its hash): "
    "the chain must still pass through it.",
)
def audit_verify(expect: audit.Checkpoint | None) -> None:
    """Check the hash chain; on a break, name the first bad event and exit 1."""
    result = audit.verify(expect=expect)
    if result.ok:
        through = f", through the kept head ({expect})" if expect is not None else ""
        click.echo(f"ok: {result.events} events, head {result.head}{through}")
        return
    where = f"event {result.broken_event_id}" if result.broken_event_id is not None else "head"
    click.echo(f"BROKEN at {where}: {result.problem}", err=True)
    click.echo(f"{result.events} events read; last good hash {result.head}", err=True)
    sys.exit(1)


@audit_cli.command("checkpoint")
def audit_checkpoint() -> None:
    """Verify the chain, then print its head as one line to keep outside the database."""
    result = audit.verify()
    if not result.ok:
        # Pinning a broken chain would vouch for the damage.
        click.echo(f"BROKEN: {result.problem}; no checkpoint taken", err=True)
        sys.exit(1)
    checkpoint = result.checkpoint()
    if checkpoint is None:
        click.echo("the log is empty: nothing to keep yet", err=True)
        return
    click.echo(checkpoint.line())


@audit_cli.command("export")
@click.option(
    "--format", "fmt", type=click.Choice(audit.EXPORT_FORMATS), default="jsonl", show_default=True
)
@click.option("--since", type=Moment(), help="Only events at or after this date or time (UTC).")
@click.option("--before", type=Moment(), help="Only events before this date or time (UTC).")
@click.option("--clip", "clip_id", type=click.IntRange(min=1), help="Only this clip's events.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, allow_dash=True),
    default="-",
    help="Write to this file instead of standard output.",
)
def audit_export(
    fmt: str,
    since: datetime | None,
    before: datetime | None,
    clip_id: int | None,
    output: str,
) -> None:
    """Write the log as JSON lines or CSV, oldest first, streamed."""
    if since is not None and before is not None and since >= before:
        raise click.BadParameter("must be later than --since", param_hint="'--before'")
    chunks = audit.export(audit.filtered(since=since, until=before, clip_id=clip_id), fmt)
    if output == "-":
        sys.stdout.writelines(chunks)
        sys.stdout.flush()
        return
    # newline="": the csv module writes its own line ends.
    with open(output, "w", encoding="utf-8", newline="") as file:
        file.writelines(chunks)


@click.command("worker")
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--periodic/--no-periodic",
    default=False,
    show_default=True,
    help="Run the schedule (cleanup, reaper, mail retries, digest). Any number of workers may:"
    " each job still runs once per period across the deployment.",
)
def worker_command(workers: int, periodic: bool) -> None:
    """Run a job consumer: verification, renditions, mail and, with --periodic, the schedule."""
    from . import jobs  # noqa: F401  # registers the tasks with the queue
    from .jobqueue import beat_while_consuming, huey, run_periodic_once_per_deployment

    if huey.immediate:
        raise click.ClickException("GREENLIGHT_QUEUE_IMMEDIATE is on: jobs run in the web process")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # The root handler above prints the app's records too; Flask's own would print them twice.
    current_app.logger.removeHandler(default_handler)
    beat_while_consuming()
    run_periodic_once_per_deployment()
    # SqliteHuey is polled: Huey's default backs off to 10 s between empty looks, which a
    # tester waiting on "checking the file" would feel. A poll a second costs next to nothing.
    consumer = huey.create_consumer(
        workers=workers, periodic=periodic, worker_type="thread", max_delay=1.0
    )
    consumer.run()


@provenance_cli.command("init")
def provenance_init() -> None:
    """Make a self-signed development signing pair under instance/ (mode 0600)."""
    instance = Path(current_app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    key_path = instance / provenance_keys.DEV_KEY_FILE
    chain_path = instance / provenance_keys.DEV_CHAIN_FILE
    for path in (key_path, chain_path):
        if path.exists():
            raise click.ClickException(f"{path} already exists; delete both files to start over")
    identity = provenance_keys.make_development_identity(current_app.config["SITE_URL"])
    provenance_keys.write_private(key_path, identity.key_pem)
    provenance_keys.write_private(chain_path, identity.chain_pem)
    click.echo("For development only: nobody outside this machine trusts this certificate.")
    click.echo(f"GREENLIGHT_C2PA_SIGNING_KEY={key_path}")
    click.echo(f"GREENLIGHT_C2PA_CERT_CHAIN={chain_path}")


@provenance_cli.command("read")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def provenance_read(path: Path) -> None:
    """Read FILE's Content Credentials as verification would; exit 1 unless `require` passes it."""
    try:
        with path.open("rb") as fh:
            container = media.check_container(fh, media.MediaLimits())
    except media.MediaRejected as exc:
        raise click.ClickException(exc.reason) from None
    found = read_provenance(path, container, current_app.config["C2PA_TRUST_ANCHORS_PEM"])
    click.echo(found.summary())
    details = {
        "state": found.state,
        "signer": found.signer_name,
        "issuer": found.signer_issuer,
        "serial": found.signer_serial,
        "trusted": "yes" if found.trusted else "no",
        "source type": found.digital_source_type,
        "codes": ", ".join(found.codes),
    }
    for label, value in details.items():
        if value:
            click.echo(f"  {label}: {value}")
    sys.exit(0 if found.vouched else 1)


@provenance_cli.command("check")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def provenance_check(path: Path) -> None:
    """Say whether FILE is a copy this deployment approved: its signature and the log agree."""
    identity = current_app.config["C2PA_SIGNING_IDENTITY"]
    if identity is None:
        raise click.ClickException("no signing key is configured (GREENLIGHT_C2PA_SIGNING_KEY)")
    try:
        with path.open("rb") as fh:
            container = media.check_container(fh, media.MediaLimits())
    except media.MediaRejected as exc:
        raise click.ClickException(exc.reason) from None
    try:
        click.echo(provenance_keys.check_approved_copy(path, container, identity))
    except provenance_keys.NotApproved as exc:
        raise click.ClickException(f"not a copy this deployment approved: {exc}") from None


@provenance_cli.command("release")
@click.argument("clip_id", type=int)
@click.option("--admin", "admin_email", required=True, help="The admin letting it through.")
@click.option("--reason", required=True, help="Why; it is written to the decision log.")
def provenance_release(clip_id: int, admin_email: str, reason: str) -> None:
    """Let a clip held for its Content Credentials into the review queue."""
    clip = db.session.get(Clip, clip_id)
    if clip is None:
        raise click.ClickException(f"no clip {clip_id}")
    with committed():
        workflow.release_provenance_hold(clip, user_or_fail(admin_email), reason)
    click.echo(f"clip {clip_id} is in the review queue")


def register_cli(app: Flask) -> None:
    for group in (users_cli, audit_cli, demo_cli, storage_cli, provenance_cli):
        app.cli.add_command(group)
    app.cli.add_command(worker_command)
