"""`flask tokens create|list|revoke`: personal API tokens from the command line."""

from __future__ import annotations

import click

from approval.cli import committed, user_or_fail
from approval.ops import tokens
from approval.web import exact_time

tokens_cli = click.Group("tokens", help="Personal API tokens: create, list, revoke.")


@tokens_cli.command("create")
@click.argument("email")
@click.option("--name", default="command line", show_default=True, help="To tell it apart.")
@click.option(
    "--expires",
    "days",
    type=click.IntRange(1, tokens.MAX_EXPIRY_DAYS),
    default=None,
    help="Days until it stops working (default: never).",
)
def tokens_create(email: str, name: str, days: int | None) -> None:
    """Make a token for EMAIL and print it; it is shown only this once."""
    user = user_or_fail(email)
    with committed():
        token, raw = tokens.create(user, name=name, expires_in_days=days, actor=None)
    expiry = f"expires {exact_time(token.expires_at)}" if token.expires_at else "never expires"
    click.echo(f"token {token.id} “{token.name}” for {user.email}, {expiry}:", err=True)
    click.echo(raw)
    click.echo("It is shown only this once; keep it somewhere safe.", err=True)


@tokens_cli.command("list")
@click.argument("email")
def tokens_list(email: str) -> None:
    """List EMAIL's tokens with their state and when each was last used."""
    user = user_or_fail(email)
    rows = tokens.for_user(user)
    if not rows:
        click.echo(f"{user.email} has no API tokens")
        return
    click.echo(f"{'id':>5}  {'prefix':<13} {'state':<8} {'last used':<24} {'expires':<24} name")
    for token in rows:
        click.echo(
            f"{token.id:>5}  {token.prefix + '…':<13} {tokens.state(token):<8} "
            f"{exact_time(token.last_used_at) or 'never':<24} "
            f"{exact_time(token.expires_at) or 'never':<24} {token.name}"
        )


@tokens_cli.command("revoke")
@click.argument("token_id", type=int)
def tokens_revoke(token_id: int) -> None:
    """Revoke token TOKEN_ID (as listed): it stops working with the next request."""
    with committed():
        token = tokens.find(token_id)
        changed = tokens.revoke(token, actor=None)
    owner = token.user.email
    click.echo(f"token {token.id} of {owner} {'revoked' if changed else 'was already revoked'}")
