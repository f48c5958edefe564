"""Signing in through the real forms: csrf_token, login, post_form and signed_in.

Loaded from tests/conftest.py's ``pytest_plugins``. The people fixtures (`tester`, `reviewer`,
`admin`) are plain users; a test that wants one signed in says so with `signed_in(...)`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from approval.models import Role, User
from tests.plugins.factories import PASSWORD

#: signed_in(Role.REVIEWER) or signed_in(user), optionally client=another_client.
SignIn = Callable[..., FlaskClient]


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token from a form page, as a browser would have it."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, f"no CSRF token on {path}"
    return match.group(1)


@pytest.fixture
def login(client: FlaskClient) -> Callable[..., Any]:
    """Sign a user in through the real form: login(user) or login(email, password)."""

    def sign_in(user: User | str, password: str = PASSWORD) -> Any:
        email = user if isinstance(user, str) else user.email
        return client.post(
            "/login",
            data={"email": email, "password": password, "csrf_token": csrf_token(client)},
        )

    return sign_in


@pytest.fixture
def post_form(client: FlaskClient) -> Callable[..., Any]:
    """POST a form with a valid CSRF token taken from `page` (default: the same path)."""

    def post(
        path: str, data: dict[str, Any] | None = None, page: str | None = None, **kw: Any
    ) -> Any:
        token = csrf_token(client, page or path)
        return client.post(path, data={**(data or {}), "csrf_token": token}, **kw)

    return post


@pytest.fixture
def signed_in(app: Flask, request: pytest.FixtureRequest, make_user: Callable[..., User]) -> SignIn:
    """Sign a test client in as a user (or a new user with a role); return that client.

    The client is the test's `client` unless one is given, so `signed_in(reviewer)` followed by
    `client.get(...)` acts as the reviewer. Fails at once if the sign-in is refused.
    """

    def sign_in(who: Role | User, client: FlaskClient | None = None) -> FlaskClient:
        user = make_user(who) if isinstance(who, Role) else who
        browser = client if client is not None else request.getfixturevalue("client")
        response = browser.post(
            "/login",
            data={"email": user.email, "password": PASSWORD, "csrf_token": csrf_token(browser)},
        )
        assert response.status_code == 302, f"{user.email} could not sign in"
        return browser

    return sign_in
