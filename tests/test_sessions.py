"""Sessions end for real: sign-out, password change or reset, deactivation, "sign out everywhere".

Each case signs a browser in (with "keep me signed in"), copies its cookies to other browsers as
a thief would, ends the sessions one way, and checks that neither the copied session cookie nor
the copied remember cookie signs anyone in any more.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from approval.extensions import db
from approval.models import ApiToken, AuditEvent, Role, User
from approval.ops import tokens
from approval.ops.people import issue_password_link, set_active
from tests.plugins.factories import PASSWORD
from tests.plugins.web import csrf_token

MakeUser = Callable[..., User]

SESSION_COOKIE = "greenlight_session"
REMEMBER_COOKIE = "greenlight_remember"
NEW_PASSWORD = "a brand new long password"


def sign_in(app: Flask, user: User, *, remember: bool = True) -> FlaskClient:
    """A new browser signed in as `user` through the form."""
    browser = app.test_client()
    data = {"email": user.email, "password": PASSWORD, "csrf_token": csrf_token(browser)}
    if remember:
        data["remember"] = "y"
    assert browser.post("/login", data=data).status_code == 302
    return browser


def copy_cookies(app: Flask, browser: FlaskClient, *names: str) -> FlaskClient:
    """A second browser holding copies of `browser`'s cookies with these names."""
    thief = app.test_client()
    for name in names:
        cookie = browser.get_cookie(name)
        assert cookie is not None, f"{name} was never set"
        thief.set_cookie(name, cookie.value)
    return thief


def is_signed_in(browser: FlaskClient) -> bool:
    """Whether the account page opens (a signed-out browser is sent to the sign-in page)."""
    status = browser.get("/account").status_code
    assert status in {200, 302}
    return status == 200


def sign_out(app: Flask, browser: FlaskClient, user: User) -> None:
    token = csrf_token(browser, "/account")
    assert browser.post("/logout", data={"csrf_token": token}).status_code == 302


def change_password(app: Flask, browser: FlaskClient, user: User) -> None:
    data = {"current": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    token = csrf_token(browser, "/account")
    response = browser.post("/account/password", data={**data, "csrf_token": token})
    assert response.status_code == 302


def reset_password(app: Flask, browser: FlaskClient, user: User) -> None:
    """An admin issues a set-password link and someone redeems it in another browser."""
    token = issue_password_link(user, actor=None)
    db.session.commit()
    path = f"/set-password/{token}"
    redeemer = app.test_client()
    data = {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    response = redeemer.post(path, data={**data, "csrf_token": csrf_token(redeemer, path)})
    assert response.status_code == 302


def deactivate_and_reactivate(app: Flask, browser: FlaskClient, user: User) -> None:
    set_active(user, False, actor=None)
    db.session.commit()
    set_active(user, True, actor=None)
    db.session.commit()


def sign_out_everywhere(app: Flask, browser: FlaskClient, user: User) -> None:
    token = csrf_token(browser, "/account")
    response = browser.post("/account/sign-out-everywhere", data={"csrf_token": token})
    assert response.status_code == 302


ENDINGS = {
    "sign-out": sign_out,
    "password change": change_password,
    "password reset": reset_password,
    "deactivate and reactivate": deactivate_and_reactivate,
    "sign out everywhere": sign_out_everywhere,
}


@pytest.mark.parametrize("ending", list(ENDINGS))
@pytest.mark.parametrize("copied", [SESSION_COOKIE, REMEMBER_COOKIE])
def test_a_copied_cookie_is_refused_once_sessions_end(
    app: Flask, make_user: MakeUser, ending: str, copied: str
) -> None:
    user = make_user(Role.TESTER)
    browser = sign_in(app, user)
    thief = copy_cookies(app, browser, copied)
    assert is_signed_in(thief)
    # A second copy, never used before the sessions end (a cookie kept on the shelf).
    shelved = copy_cookies(app, browser, copied)
    ENDINGS[ending](app, browser, user)
    assert not is_signed_in(thief)
    assert not is_signed_in(shelved)


def test_sign_out_ends_the_remember_cookie_in_the_same_browser(
    app: Flask, make_user: MakeUser
) -> None:
    user = make_user()
    browser = sign_in(app, user)
    sign_out(app, browser, user)
    assert browser.get_cookie(REMEMBER_COOKIE) is None
    assert not is_signed_in(browser)


@pytest.mark.parametrize("ending", ["password change", "sign out everywhere"])
def test_the_browser_that_ends_the_other_sessions_stays_signed_in(
    app: Flask, make_user: MakeUser, ending: str
) -> None:
    user = make_user()
    browser = sign_in(app, user)
    ENDINGS[ending](app, browser, user)
    assert is_signed_in(browser)
    # Its remember cookie was issued again with the new value, so it outlives the session.
    assert is_signed_in(copy_cookies(app, browser, REMEMBER_COOKIE))


def test_signing_in_elsewhere_keeps_the_first_session(app: Flask, make_user: MakeUser) -> None:
    user = make_user()
    laptop = sign_in(app, user)
    phone = sign_in(app, user)
    assert is_signed_in(laptop)
    assert is_signed_in(phone)


def test_the_account_page_offers_sign_out_everywhere(app: Flask, make_user: MakeUser) -> None:
    page = sign_in(app, make_user()).get("/account").get_data(as_text=True)
    assert 'action="/account/sign-out-everywhere"' in page
    assert "Sign out everywhere" in page


def test_sign_out_everywhere_needs_a_signed_in_post(app: Flask, make_user: MakeUser) -> None:
    anonymous = app.test_client()
    token = csrf_token(anonymous)
    response = anonymous.post("/account/sign-out-everywhere", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    assert sign_in(app, make_user()).get("/account/sign-out-everywhere").status_code == 405


def test_a_session_from_before_the_upgrade_is_refused(app: Flask, make_user: MakeUser) -> None:
    """A session naming only the user id (as before session tokens) signs nobody in."""
    user = make_user()
    browser = app.test_client()
    with browser.session_transaction() as session:
        session["_user_id"] = str(user.id)
        session["_fresh"] = True
    assert not is_signed_in(browser)


def actions_about(user: User) -> list[str]:
    return list(
        db.session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.subject_type == "user", AuditEvent.subject_id == user.id)
            .order_by(AuditEvent.id)
        )
    )


@pytest.mark.parametrize(
    ("ending", "action"),
    [
        ("password change", "user.password_changed"),
        ("password reset", "user.password_set"),
        ("sign out everywhere", "user.signed_out_everywhere"),
    ],
)
def test_ending_sessions_on_purpose_is_audited(
    app: Flask, make_user: MakeUser, ending: str, action: str
) -> None:
    user = make_user()
    browser = sign_in(app, user)
    ENDINGS[ending](app, browser, user)
    assert actions_about(user)[-1] == action
    event = db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)).one()
    assert NEW_PASSWORD not in event.data


def test_wrong_current_password_changes_nothing(app: Flask, make_user: MakeUser) -> None:
    user = make_user()
    browser = sign_in(app, user)
    thief = copy_cookies(app, browser, REMEMBER_COOKIE)
    token = csrf_token(browser, "/account")
    data = {"current": "not it", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}
    response = browser.post("/account/password", data={**data, "csrf_token": token})
    assert response.status_code == 200
    assert "not your current password" in response.get_data(as_text=True)
    assert "user.password_changed" not in actions_about(user)
    assert is_signed_in(thief)


# --- API tokens across a deactivation --------------------------------------------------------


def test_api_tokens_stay_revoked_after_reactivation(
    app: Flask, client: FlaskClient, make_user: MakeUser
) -> None:
    user = make_user()
    _, raw = tokens.create(user, name="laptop", actor=None)
    db.session.commit()
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    deactivate_and_reactivate(app, client, user)
    response = client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert "revoked" in response.get_json()["detail"]


def test_deactivation_revokes_tokens_and_logs_each(app: Flask, make_user: MakeUser) -> None:
    user = make_user()
    kept = make_user()
    for owner in (user, user, kept):
        tokens.create(owner, name="t", actor=None)
    db.session.commit()
    set_active(user, False, actor=None)
    db.session.commit()
    states = {
        (token.user_id, tokens.state(token)) for token in db.session.scalars(select(ApiToken))
    }
    assert states == {(user.id, "revoked"), (kept.id, "active")}
    revocations = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "api_token.revoked")
    ).all()
    assert len(revocations) == 2
    assert {event.reason for event in revocations} == {"account deactivated"}


def test_a_reactivated_user_can_make_new_tokens(
    app: Flask, client: FlaskClient, make_user: MakeUser
) -> None:
    user = make_user()
    deactivate_and_reactivate(app, client, user)
    _, raw = tokens.create(user, name="new", actor=None)
    db.session.commit()
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {raw}"}).status_code == 200
