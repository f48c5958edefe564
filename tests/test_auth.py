"""Sign-in, sign-out, cookies, rate limits, CSRF and redirects."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from approval.extensions import db
from approval.models import AuditEvent, Role, User
from tests.plugins.factories import PASSWORD
from tests.plugins.snapshot import nothing_changed
from tests.plugins.web import csrf_token

Login = Callable[..., Any]
MakeUser = Callable[..., User]


def test_sign_in_lands_on_the_role_page(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    make_user(Role.REVIEWER, email="rev@example.com")
    response = login("rev@example.com")
    assert response.status_code == 302
    assert client.get("/").headers["Location"] == "/review/"


@pytest.mark.parametrize(
    ("roles", "landing"),
    [((Role.TESTER,), "/clips/"), ((Role.REVIEWER,), "/review/"), ((Role.ADMIN,), "/admin/clips")],
)
def test_each_role_has_its_landing_page(
    client: FlaskClient, make_user: MakeUser, login: Login, roles: tuple[Role, ...], landing: str
) -> None:
    login(make_user(*roles))
    assert client.get("/").headers["Location"] == landing
    assert client.get(landing).status_code == 200


def test_email_is_case_insensitive(client: FlaskClient, make_user: MakeUser, login: Login) -> None:
    make_user(email="mixed@example.com")
    assert login("  MIXED@Example.com ").status_code == 302


def test_wrong_password_and_unknown_email_look_the_same(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    make_user(email="known@example.com")
    wrong_password = login("known@example.com", "not the password")
    unknown_email = login("nobody@example.com", PASSWORD)
    assert wrong_password.status_code == unknown_email.status_code == 200
    assert "Wrong email or password." in wrong_password.get_data(as_text=True)
    assert "Wrong email or password." in unknown_email.get_data(as_text=True)


def test_failed_sign_in_is_audited(client: FlaskClient, make_user: MakeUser, login: Login) -> None:
    user = make_user(email="known@example.com")
    login("known@example.com", "not the password")
    event = db.session.scalars(
        select(AuditEvent).where(AuditEvent.action == "auth.sign_in_failed")
    ).one()
    assert event.subject_id == user.id
    assert "known@example.com" in event.data


def test_inactive_user_cannot_sign_in(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    make_user(email="gone@example.com", active=False)
    response = login("gone@example.com")
    assert response.status_code == 200
    assert "Wrong email or password." in response.get_data(as_text=True)


def test_deactivation_ends_a_live_session(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    user = make_user(Role.TESTER)
    login(user)
    assert client.get("/clips/").status_code == 200
    user.active = False
    db.session.commit()
    assert client.get("/clips/").status_code == 302


def test_sixth_failed_attempt_for_one_account_gets_429_with_retry_after(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    make_user(email="target@example.com")
    for _ in range(5):
        assert login("target@example.com", "wrong password").status_code == 200
    response = login("target@example.com", "wrong password")
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert "Too many attempts" in response.get_data(as_text=True)


def test_failed_attempts_from_one_address_across_accounts_are_limited(
    app: Flask, client: FlaskClient, login: Login
) -> None:
    app.config["LOGIN_ADDRESS_RATE_LIMIT"] = "5 per minute"
    statuses = [login(f"guess{n}@example.com", "wrong password").status_code for n in range(6)]
    assert statuses == [200] * 5 + [429]


def test_successful_sign_ins_do_not_count_towards_the_limit(
    app: Flask, make_user: MakeUser
) -> None:
    user = make_user()
    for _ in range(7):
        client = app.test_client()
        token = csrf_token(client)
        response = client.post(
            "/login", data={"email": user.email, "password": PASSWORD, "csrf_token": token}
        )
        assert response.status_code == 302


def test_form_without_csrf_token_gets_400_and_changes_nothing(
    client: FlaskClient, make_user: MakeUser
) -> None:
    user = make_user()
    with nothing_changed():
        response = client.post("/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code == 400
    assert "form has expired" in response.get_data(as_text=True)
    assert client.get("/clips/").status_code == 302


def test_stale_csrf_token_is_refused(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    user = make_user(Role.ADMIN)
    stale = csrf_token(client)
    login(user)
    # The session was renewed at sign-in, so the token from before no longer counts.
    with nothing_changed():
        response = client.post(
            "/admin/people",
            data={
                "email": "new@example.com",
                "display_name": "New",
                "roles": "tester",
                "csrf_token": stale,
            },
        )
    assert response.status_code == 400
    assert User.by_email("new@example.com") is None


def test_session_cookie_flags(client: FlaskClient, make_user: MakeUser, login: Login) -> None:
    response = login(make_user())
    cookie = next(
        h for h in response.headers.getlist("Set-Cookie") if h.startswith("greenlight_session=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie


def test_remember_cookie_is_httponly_lax_and_short(
    client: FlaskClient, make_user: MakeUser
) -> None:
    user = make_user()
    response = client.post(
        "/login",
        data={
            "email": user.email,
            "password": PASSWORD,
            "remember": "y",
            "csrf_token": csrf_token(client),
        },
    )
    cookie = next(
        h for h in response.headers.getlist("Set-Cookie") if h.startswith("greenlight_remember=")
    )
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    expires = parsedate_to_datetime(cookie.split("Expires=")[1].split(";")[0])
    assert expires - datetime.now(UTC) <= timedelta(days=14, minutes=1)


def test_secure_cookies_when_configured(
    app_factory: Callable[..., Flask], make_user: MakeUser
) -> None:
    app = app_factory(COOKIE_SECURE=True)
    client = app.test_client()
    with app.app_context():
        user = make_user()
        response = client.post(
            "/login",
            data={
                "email": user.email,
                "password": PASSWORD,
                "remember": "y",
                "csrf_token": csrf_token(client),
            },
        )
    cookies = response.headers.getlist("Set-Cookie")
    assert all(
        "Secure" in c
        for c in cookies
        if c.startswith(("greenlight_session=", "greenlight_remember="))
    )


def test_anonymous_is_sent_to_sign_in_with_next(client: FlaskClient) -> None:
    response = client.get("/admin/people")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=%2Fadmin%2Fpeople")


def test_next_is_followed_after_sign_in(client: FlaskClient, make_user: MakeUser) -> None:
    user = make_user(Role.ADMIN)
    page = client.get("/login?next=/admin/people")
    token = csrf_token(client)
    assert 'value="/admin/people"' in page.get_data(as_text=True)
    response = client.post(
        "/login",
        data={
            "email": user.email,
            "password": PASSWORD,
            "next": "/admin/people",
            "csrf_token": token,
        },
    )
    assert response.headers["Location"] == "/admin/people"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
        "http:/x",
        "/\x0d\x0aX: y",
    ],
)
def test_next_never_leaves_the_site(client: FlaskClient, make_user: MakeUser, target: str) -> None:
    user = make_user(Role.TESTER)
    token = csrf_token(client)
    response = client.post(
        "/login",
        data={"email": user.email, "password": PASSWORD, "next": target, "csrf_token": token},
    )
    assert response.headers["Location"] == "/"


def test_logout_needs_post(client: FlaskClient, make_user: MakeUser, login: Login) -> None:
    login(make_user(Role.TESTER))
    assert client.get("/logout").status_code == 405
    assert client.get("/clips/").status_code == 200
    token = csrf_token(client, "/account")
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/clips/").status_code == 302


def test_account_page_saves_public_name_preference(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    user = make_user()
    login(user)
    token = csrf_token(client, "/account")
    response = client.post(
        "/account", data={"display_name": "Artist", "show_name_publicly": "y", "csrf_token": token}
    )
    assert response.status_code == 302
    db.session.refresh(user)
    assert (user.display_name, user.show_name_publicly) == ("Artist", True)


def test_change_password_needs_the_current_one(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    user = make_user()
    login(user)
    token = csrf_token(client, "/account")
    data = {"current": "wrong", "password": "a new long password", "confirm": "a new long password"}
    response = client.post("/account/password", data={**data, "csrf_token": token})
    assert "not your current password" in response.get_data(as_text=True)
    response = client.post(
        "/account/password", data={**data, "current": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 302
    db.session.refresh(user)
    assert user.check_password("a new long password")
