"""`flask users …`, `flask demo …`: the same operations the admin pages call."""

from __future__ import annotations

import secrets
import sys

import click
from flask import Flask, current_app
from sqlalchemy import func, select

from .admin.views import password_link_url
from .extensions import db, storage
from .models import Role, User
from .people import PeopleError, create_user, issue_password_link, set_active, set_roles

ROLE_CHOICE = click.Choice([role.value for role in Role])

users_cli = click.Group("users", help="Manage accounts and roles.")
demo_cli = click.Group("demo", help="Demo accounts for a first look.")
storage_cli = click.Group("storage", help="Set up clip storage.")


def _user_or_fail(email: str) -> User:
    user = User.by_email(email)
    if user is None:
        raise click.ClickException(f"no account for {email}")
    return user


def _commit_or_fail(error: PeopleError | None) -> None:
    if error is not None:
        db.session.rollback()
        raise click.ClickException(str(error))
    db.session.commit()


@users_cli.command("create")
@click.argument("email")
@click.option("--role", "roles", type=ROLE_CHOICE, multiple=True, required=True)
@click.option("--name", default="", help="Display name (defaults to the email).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
def users_create(email: str, roles: tuple[str, ...], name: str, password_stdin: bool) -> None:
    """Create an account; without --password-stdin, print a one-time set-password link."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    try:
        user = create_user(email, name, [Role(r) for r in roles], actor=None, password=password)
        token = None if password_stdin else issue_password_link(user, actor=None)
    except PeopleError as exc:
        _commit_or_fail(exc)
        return
    _commit_or_fail(None)
    click.echo(f"created {user.email} ({', '.join(sorted(roles))})")
    if token is not None:
        click.echo(f"set-password link (valid 72 h, use once): {password_link_url(token)}")


@users_cli.command("roles")
@click.argument("email")
@click.option("--add", "add", type=ROLE_CHOICE, multiple=True)
@click.option("--remove", "remove", type=ROLE_CHOICE, multiple=True)
def users_roles(email: str, add: tuple[str, ...], remove: tuple[str, ...]) -> None:
    """Grant and withdraw roles."""
    user = _user_or_fail(email)
    try:
        set_roles(user, add=[Role(r) for r in add], remove=[Role(r) for r in remove], actor=None)
    except PeopleError as exc:
        _commit_or_fail(exc)
    _commit_or_fail(None)
    click.echo(f"{user.email}: {', '.join(sorted(user.roles))}")


@users_cli.command("deactivate")
@click.argument("email")
def users_deactivate(email: str) -> None:
    """Deactivate an account: its sessions and tokens stop working at once."""
    user = _user_or_fail(email)
    try:
        set_active(user, False, actor=None)
    except PeopleError as exc:
        _commit_or_fail(exc)
    _commit_or_fail(None)
    click.echo(f"{user.email} deactivated")


@users_cli.command("activate")
@click.argument("email")
def users_activate(email: str) -> None:
    """Reactivate a deactivated account."""
    user = _user_or_fail(email)
    set_active(user, True, actor=None)
    _commit_or_fail(None)
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


def register_cli(app: Flask) -> None:
    for group in (users_cli, demo_cli, storage_cli):
        app.cli.add_command(group)
