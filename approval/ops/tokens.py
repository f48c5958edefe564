"""Personal API tokens: made once and shown once, kept only as a hash, revocable at any time.

A token acts with its owner's roles at the moment of use, so a role change or a deactivation
takes effect on the very next request. Like the other operations, these write their audit event
in the caller's transaction and leave the commit to the caller, the last-used stamp (written at
most once a minute per token) included.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update

from approval import audit
from approval.clock import utcnow
from approval.extensions import db
from approval.models import MAX_ID, ApiToken, Role, User
from approval.ops.errors import InvalidInput, NotAllowed, NotAuthenticated, NotFound, StateConflict
from approval.token_hash import hash_token

#: Every token starts with this, so secret scanners and people can tell what it is.
TOKEN_PREFIX = "glt_"  # noqa: S105  # a public marker, not a secret
#: 32 random bytes: 256 bits from `secrets`.
TOKEN_BYTES = 32
#: Characters of the token kept in clear, so people can tell their tokens apart in lists.
SHOWN_PREFIX_LENGTH = 12
_TOKEN_SHAPE = re.compile(r"glt_[A-Za-z0-9_-]{20,100}")
MAX_NAME_LENGTH = 100
MAX_EXPIRY_DAYS = 3650
#: How stale `last_used_at` may get: one write per token per minute keeps busy clients cheap.
LAST_USED_PRECISION = timedelta(minutes=1)


def _describe_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def create(
    user: User, *, name: str, expires_in_days: int | None = None, actor: User | None
) -> tuple[ApiToken, str]:
    """Make a token for `user`; returns the row and the raw token, which is never stored."""
    name = name.strip()
    if not name:
        raise InvalidInput("Give the token a name, so you can tell it apart later.", "name")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidInput(f"The name can be at most {MAX_NAME_LENGTH} characters.", "name")
    if not user.active:
        raise StateConflict("This account is deactivated; its tokens would not work.")
    if expires_in_days is not None and not 1 <= expires_in_days <= MAX_EXPIRY_DAYS:
        raise InvalidInput(
            f"A token expires after 1 to {MAX_EXPIRY_DAYS} days, or never.", "expires_in_days"
        )
    if actor is not None and actor.id != user.id and not actor.has_role(Role.ADMIN):
        raise NotAllowed("You can only make tokens for yourself.")
    now = utcnow()
    raw = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=hash_token(raw),
        prefix=raw[:SHOWN_PREFIX_LENGTH],
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    db.session.add(token)
    db.session.flush()
    audit.record(
        "api_token.created",
        actor=actor,
        subject_type="api_token",
        subject_id=token.id,
        data={
            "user": user.id,
            "name": name,
            "prefix": token.prefix,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, raw


def authenticate(raw: str) -> User:
    """The active owner of a live token, stamping its last use; else NotAuthenticated."""
    if not _TOKEN_SHAPE.fullmatch(raw):
        raise NotAuthenticated(
            "This is not a Greenlight API token (they start with glt_); copy the whole token."
        )
    token = db.session.scalar(select(ApiToken).where(ApiToken.token_hash == hash_token(raw)))
    if token is None:
        raise NotAuthenticated("This API token is unknown; it may be mistyped or deleted.")
    now = utcnow()
    # Deactivation revokes the tokens too; while the account is off, say the more useful reason.
    if not token.user.active:
        raise NotAuthenticated("The account this API token belongs to is deactivated.")
    if token.revoked_at is not None:
        raise NotAuthenticated(
            f"This API token ({token.prefix}…) was revoked on {_describe_time(token.revoked_at)}; "
            "create a new one on your account page."
        )
    if token.expires_at is not None and token.expires_at <= now:
        raise NotAuthenticated(
            f"This API token ({token.prefix}…) expired on {_describe_time(token.expires_at)}; "
            "create a new one on your account page."
        )
    user = token.user
    _stamp_last_use(token, now)
    return user


def _stamp_last_use(token: ApiToken, now: datetime) -> None:
    """Record the use, at most once per LAST_USED_PRECISION; the request's commit keeps it."""
    if token.last_used_at is not None and token.last_used_at > now - LAST_USED_PRECISION:
        return
    # Conditional, so concurrent requests with one token write the row once between them.
    result = db.session.execute(
        update(ApiToken)
        .where(
            ApiToken.id == token.id,
            or_(
                ApiToken.last_used_at.is_(None),
                ApiToken.last_used_at <= now - LAST_USED_PRECISION,
            ),
        )
        .values(last_used_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount:  # type: ignore[attr-defined]
        token.last_used_at = now


def for_user(user: User) -> list[ApiToken]:
    """The user's tokens, newest first, revoked ones included (they show as revoked)."""
    return list(
        db.session.scalars(
            select(ApiToken)
            .where(ApiToken.user_id == user.id)
            .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        )
    )


def find(token_id: int, *, owner: User | None = None) -> ApiToken:
    """The token with this id (of `owner`, if given); NotFound when there is none."""
    token = db.session.get(ApiToken, token_id) if 0 < token_id <= MAX_ID else None
    if token is None or (owner is not None and token.user_id != owner.id):
        raise NotFound(f"There is no API token {token_id}.")
    return token


def revoke(token: ApiToken, *, actor: User | None, reason: str | None = None) -> bool:
    """Revoke a token for good; False when it already was (nothing more is logged)."""
    if actor is not None and actor.id != token.user_id and not actor.has_role(Role.ADMIN):
        raise NotFound(f"There is no API token {token.id}.")
    result = db.session.execute(
        update(ApiToken)
        .where(ApiToken.id == token.id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    audit.record(
        "api_token.revoked",
        actor=actor,
        subject_type="api_token",
        subject_id=token.id,
        reason=reason,
        data={"user": token.user_id, "name": token.name, "prefix": token.prefix},
    )
    return True


def state(token: ApiToken, now: datetime | None = None) -> str:
    """'active', 'expired' or 'revoked', as lists show it."""
    now = now or utcnow()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"
