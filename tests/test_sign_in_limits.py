"""Sign-in limits that stop guessing without letting anyone lock a real user out.

Failed sign-ins count per (account, address) and per address tightly, per account only loosely;
the 429 page says, in the site's layout, when to try again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from approval.config import defaults
from approval.error_pages import in_words
from approval.models import User
from tests.plugins.factories import PASSWORD
from tests.plugins.web import csrf_token

MakeUser = Callable[..., User]
ATTACKER = "203.0.113.66"
REAL_USER = "198.51.100.7"


def attempt(client: FlaskClient, email: str, password: str, address: str) -> Any:
    token = csrf_token(client)
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": token},
        environ_base={"REMOTE_ADDR": address},
    )


def test_failing_on_purpose_elsewhere_does_not_lock_the_real_user_out(
    app: Flask, make_user: MakeUser
) -> None:
    user = make_user(email="target@example.com")
    attacker = app.test_client()
    statuses = [attempt(attacker, user.email, "guess", ATTACKER).status_code for _ in range(10)]
    assert statuses == [200] * 5 + [429] * 5
    # The right password from the attacker's address is refused too (the pair is limited)...
    assert attempt(attacker, user.email, PASSWORD, ATTACKER).status_code == 429
    # ...but the real person, elsewhere, signs in at once.
    assert attempt(app.test_client(), user.email, PASSWORD, REAL_USER).status_code == 302


def test_one_address_guessing_across_accounts_is_limited(app: Flask) -> None:
    app.config["LOGIN_ADDRESS_RATE_LIMIT"] = "8 per minute"
    client = app.test_client()
    statuses = [
        attempt(client, f"guess{n}@example.com", "wrong", ATTACKER).status_code for n in range(9)
    ]
    assert statuses == [200] * 8 + [429]
    # Another address is not affected.
    assert attempt(client, "guess0@example.com", "wrong", REAL_USER).status_code == 200


def test_an_account_guessed_at_from_many_addresses_is_limited_loosely(
    app: Flask, make_user: MakeUser
) -> None:
    app.config["LOGIN_ACCOUNT_RATE_LIMIT"] = "12 per hour"
    user = make_user()
    client = app.test_client()
    statuses = [attempt(client, user.email, "wrong", f"192.0.2.{n}").status_code for n in range(13)]
    assert statuses == [200] * 12 + [429]


def test_the_default_account_limit_is_loose(tmp_path: Path) -> None:
    settings = defaults(tmp_path)
    assert settings["LOGIN_ACCOUNT_RATE_LIMIT"] == "50 per hour"
    assert settings["LOGIN_RATE_LIMIT"] == "5 per minute"


def test_the_429_page_is_in_the_layout_and_says_when_to_try_again(
    app: Flask, make_user: MakeUser
) -> None:
    user = make_user()
    client = app.test_client()
    for _ in range(5):
        attempt(client, user.email, "wrong", ATTACKER)
    response = attempt(client, user.email, "wrong", ATTACKER)
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    wait = int(response.headers["Retry-After"])
    assert 0 < wait <= 60
    assert "Too many attempts" in page
    assert "Please try again in " in page
    assert "per 1 minute" not in page
    assert 'class="site-header"' in page  # the site's layout, not a bare message


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (1, "in 1 second"),
        (40, "in 40 seconds"),
        (60, "in 1 minute"),
        (61, "in 2 minutes"),
        (3599, "in about an hour"),
        (3600, "in about an hour"),
        (7300, "in about 2 hours"),
    ],
)
def test_waits_in_words(seconds: int, words: str) -> None:
    assert in_words(seconds) == words
