"""Who is calling: a personal API token (Authorization: Bearer …) or the browser session.

A Bearer request carries no cookies, so it needs no CSRF token, and nothing here writes to the
session, so it gets no cookie back. A session request that changes something must carry the
page's CSRF token in X-CSRFToken, as the pages' own scripts do.
"""

from __future__ import annotations

from collections.abc import Iterable

from flask import g, request
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from approval.extensions import csrf
from approval.models import Role, User
from approval.ops import tokens
from approval.ops.errors import NotAuthenticated

from .problems import ApiError

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REALM = 'Bearer realm="greenlight"'
HOW_TO = (
    "Send a personal API token as 'Authorization: Bearer <token>' (make one on your account "
    "page, under API tokens, or with `flask tokens create`), or sign in with a browser."
)


def _unauthorised(detail: str, *, invalid_token: bool = False) -> ApiError:
    challenge = f'{REALM}, error="invalid_token"' if invalid_token else REALM
    return ApiError(401, detail, title="Not signed in", headers={"WWW-Authenticate": challenge})


def authenticate() -> User:
    """The caller, by token or session; 401 (with what to do) when neither identifies anyone."""
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, raw = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise _unauthorised(
                f"The Authorization header must be 'Bearer <token>'. {HOW_TO}", invalid_token=True
            )
        try:
            user = tokens.authenticate(raw.strip())
        except NotAuthenticated as exc:
            raise _unauthorised(exc.message, invalid_token=True) from None
        # Flask-Login's per-request slot: current_user is the token's owner for this request,
        # and the session (which might name someone else) is never read.
        g._login_user = user
        return user
    if not current_user.is_authenticated:
        raise _unauthorised(f"This needs a signed-in caller. {HOW_TO}")
    if request.method not in SAFE_METHODS:
        _check_csrf()
    user: User = current_user._get_current_object()  # type: ignore[attr-defined]
    return user


def _check_csrf() -> None:
    try:
        csrf.protect()
    except CSRFError as exc:
        raise ApiError(
            400,
            f"{exc.description} A signed-in browser must send the page's CSRF token in the "
            "X-CSRFToken header with requests that change something; scripts should use an API "
            "token (Authorization: Bearer) instead of the session.",
            title="CSRF token missing or invalid",
        ) from None


def require_roles(user: User, roles: Iterable[Role]) -> None:
    """403 naming the roles needed, unless the caller holds one of them."""
    needed = list(roles)
    if not needed or any(user.has_role(role) for role in needed):
        return
    wanted = " or ".join(role.value for role in needed)
    held = ", ".join(sorted(user.roles)) or "no roles"
    raise ApiError(
        403,
        f"This needs the {wanted} role; your account has {held}. Ask an admin if you need it.",
        title="Not allowed",
    )
