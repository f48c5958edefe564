"""Operations on people: create, invite, roles, deactivate, passwords, sign-in.

Pages and the CLI call these; each writes its audit event in the caller's transaction and
leaves the commit to the caller. A refused operation raises a refusal and changes nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta

from flask import current_app
from sqlalchemy import func, select, update

from approval import audit
from approval.clock import utcnow
from approval.extensions import db
from approval.models import PasswordToken, Role, User, UserRole, normalise_email
from approval.ops import tokens
from approval.ops.errors import Gone, InvalidInput, NotAllowed, NotFound, Refused, StateConflict
from approval.ops.sessions import end_sessions
from approval.passwords import spend_equal_time
from approval.token_hash import hash_token

MIN_PASSWORD_LENGTH = 10


def everyone() -> list[User]:
    """Every account, by email, for the people page."""
    return list(db.session.scalars(select(User).order_by(User.email)))


def testers() -> list[tuple[int, str]]:
    """Every tester's id and name, by name, for the queue's tester filter."""
    rows = db.session.execute(
        select(User.id, User.display_name)
        .join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role == Role.TESTER)
        .order_by(User.display_name, User.id)
    )
    return [(row.id, row.display_name) for row in rows]


def check_password_strength(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(
            f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.", "password"
        )
    if len(password) > 1024:
        raise InvalidInput("The password must be at most 1024 characters long.", "password")


def create_user(
    email: str,
    display_name: str,
    roles: Iterable[Role],
    *,
    actor: User | None,
    password: str | None = None,
) -> User:
    """Create an account; without a password it waits for its set-password link."""
    email = normalise_email(email)
    roles = frozenset(roles)
    if not roles:
        raise InvalidInput("Give the account at least one role.", "roles")
    if User.by_email(email) is not None:
        raise StateConflict(f"An account for {email} already exists.", field="email")
    if password is not None:
        check_password_strength(password)
    user = User(email=email, display_name=display_name.strip() or email, active=True)
    user.role_rows = [UserRole(role=role) for role in sorted(roles)]
    if password is not None:
        user.set_password(password)
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.created",
        actor=actor,
        subject_type="user",
        subject_id=user.id,
        data={"email": email, "roles": sorted(roles)},
    )
    return user


def issue_password_link(user: User, *, actor: User | None) -> str:
    """Make a one-time set-password token (valid INVITE_TTL_HOURS); returns the raw token once."""
    if not user.active:
        raise StateConflict("This account is deactivated; reactivate it first.")
    now = utcnow()
    # A new link replaces any older unused one.
    db.session.execute(
        update(PasswordToken)
        .where(PasswordToken.user_id == user.id, PasswordToken.used_at.is_(None))
        .values(used_at=now)
    )
    token = secrets.token_urlsafe(32)
    db.session.add(
        PasswordToken(
            user_id=user.id,
            token_hash=hash_token(token),
            created_at=now,
            expires_at=now + timedelta(hours=current_app.config["INVITE_TTL_HOURS"]),
            created_by_id=actor.id if actor is not None else None,
        )
    )
    audit.record("user.password_link_issued", actor=actor, subject_type="user", subject_id=user.id)
    return token


def find_password_link(token: str) -> PasswordToken:
    """The live link for this token, or a refusal saying why it cannot be used."""
    link = db.session.scalar(
        select(PasswordToken).where(PasswordToken.token_hash == hash_token(token))
    )
    if link is None:
        raise NotFound("This link is not valid. Ask an admin for a new one.")
    if link.used_at is not None:
        raise Gone("This link has already been used. Ask an admin for a new one.")
    if link.expires_at <= utcnow():
        raise Gone("This link has expired. Ask an admin for a new one.")
    if not link.user.active:
        raise Gone("This account is deactivated.")
    return link


def redeem_password_link(token: str, password: str) -> User:
    """Set the password through a one-time link, spending the link."""
    link = find_password_link(token)
    check_password_strength(password)
    # Spend the link with a conditional UPDATE so two tabs cannot both use it.
    spent = db.session.execute(
        update(PasswordToken)
        .where(PasswordToken.id == link.id, PasswordToken.used_at.is_(None))
        .values(used_at=utcnow())
    )
    if spent.rowcount != 1:  # type: ignore[attr-defined]
        raise Gone("This link has already been used. Ask an admin for a new one.")
    link.user.set_password(password)
    end_sessions(link.user)
    audit.record("user.password_set", actor=link.user, subject_type="user", subject_id=link.user_id)
    return link.user


def change_password(user: User, current: str, new: str) -> None:
    """Change one's own password, proving the current one; every other session ends."""
    if not user.check_password(current):
        raise InvalidInput("That is not your current password.", "current")
    check_password_strength(new)
    user.set_password(new)
    end_sessions(user)
    audit.record("user.password_changed", actor=user, subject_type="user", subject_id=user.id)


def set_roles(
    user: User, *, add: Iterable[Role] = (), remove: Iterable[Role] = (), actor: User | None
) -> User:
    """Grant and withdraw roles; an account keeps at least one, and an active admin remains."""
    before = user.roles
    after = (before | frozenset(add)) - frozenset(remove)
    if not after:
        raise InvalidInput("An account needs at least one role; deactivate it instead.", "roles")
    if after == before:
        return user
    if Role.ADMIN in before and Role.ADMIN not in after:
        _keep_an_admin(user)
    user.role_rows = [row for row in user.role_rows if row.role in after] + [
        UserRole(role=role) for role in sorted(after - before)
    ]
    audit.record(
        "user.roles_changed",
        actor=actor,
        subject_type="user",
        subject_id=user.id,
        data={"before": sorted(before), "after": sorted(after)},
    )
    return user


def set_active(user: User, active: bool, *, actor: User | None) -> User:
    """Deactivate or reactivate an account.

    Deactivation ends its sessions and revokes its API tokens for good, so reactivation revives
    neither: the person signs in again and makes new tokens.
    """
    if user.active == active:
        return user
    if not active:
        if actor is not None and actor.id == user.id:
            raise NotAllowed("You cannot deactivate your own account.")
        if Role.ADMIN in user.roles:
            _keep_an_admin(user)
    user.active = active
    audit.record(
        "user.reactivated" if active else "user.deactivated",
        actor=actor,
        subject_type="user",
        subject_id=user.id,
    )
    if not active:
        end_sessions(user)
        for token in tokens.for_user(user):
            tokens.revoke(token, actor=actor, reason="account deactivated")
    return user


def _keep_an_admin(leaving: User) -> None:
    others = db.session.scalar(
        select(func.count())
        .select_from(User)
        .join(UserRole)
        .where(UserRole.role == Role.ADMIN, User.active.is_(True), User.id != leaving.id)
    )
    if not others:
        raise Refused("At least one active admin must remain.", "roles")


def authenticate(email: str, password: str) -> User | None:
    """The active user with this email and password, or None: one answer for every failure."""
    user = User.by_email(email)
    if user is None or user.password_hash is None:
        # Spend the same time as a real check, so timing does not tell which part was wrong.
        spend_equal_time(password)
        return None
    if not user.check_password(password) or not user.active:
        return None
    user.last_login_at = utcnow()
    return user


def record_failed_sign_in(email: str, address: str | None) -> None:
    """Log a failed sign-in; the subject is the account when the email names one."""
    user = User.by_email(email)
    audit.record(
        "auth.sign_in_failed",
        actor=None,
        subject_type="user",
        subject_id=user.id if user is not None else None,
        data={"email": normalise_email(email)[:254], "address": address},
    )
