"""Sessions that can end: the session token every session and remember cookie carries.

Flask-Login keeps `User.get_id()` ("<id>:<session token>") in the session and, signed, in the
remember cookie. A cookie signs someone in only while its token is the account's current one, so
replacing the token ends every session and remember cookie of the account at once, on every host,
with no session store to clean.
"""

from __future__ import annotations

import hmac

from approval import audit
from approval.extensions import db
from approval.models import MAX_ID, User, new_session_token


def user_for_session(session_id: str) -> User | None:
    """The active account a session or remember cookie names, if its token is still current."""
    user_id, _, token = session_id.partition(":")
    if not user_id.isdigit() or not token or int(user_id) > MAX_ID:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not user.active or not user.session_token:
        return None
    return user if hmac.compare_digest(user.session_token, token) else None


def end_sessions(user: User) -> None:
    """End every session and remember cookie of the account (the caller signs itself in again)."""
    user.session_token = new_session_token()
    db.session.flush()


def sign_out_everywhere(user: User) -> None:
    """The account page's button: every session ends, logged; the asking browser signs in again."""
    end_sessions(user)
    audit.record("user.signed_out_everywhere", actor=user, subject_type="user", subject_id=user.id)
