"""Shared fixtures: an app on a clean, migrated database per test, and its test client.

The rest lives in plugins, loaded below: the database (tests/plugins/database.py), factories
and the people fixtures (factories.py), signing in (web.py), the API's helpers (api.py), the
"nothing changed" snapshot (snapshot.py), storage, media and worker processes. Test modules
import shared helpers from those plugins, never from this file or from each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from approval import create_app
from approval.extensions import db
from approval.extensions import storage as app_storage

if TYPE_CHECKING:  # importing a plugin before pytest registers it would skip its rewriting
    from tests.plugins.factories import FrozenClock

# A plugin that imports another comes after it here, for the same reason.
pytest_plugins = [
    "tests.plugins.storage",
    "tests.plugins.media",
    "tests.plugins.provenance",
    "tests.plugins.database",
    "tests.plugins.factories",
    "tests.plugins.web",
    "tests.plugins.api",
    "tests.plugins.snapshot",
    "tests.plugins.workers",
]


class FreshContextClient(FlaskClient):
    """Each request gets its own app context, as in production.

    Tests hold an app context open for database work; without this, requests would share its
    `g` (and so Flask-Login's cached user and Flask-WTF's cached CSRF token) between requests.
    """

    def open(self, *args: Any, **kwargs: Any) -> Any:
        with self.application.app_context():
            response = super().open(*args, **kwargs)
        # Werkzeug spools a large test body to a temporary file that nobody closes.
        response.request.environ["wsgi.input"].close()
        # Let the test's own session see what the request committed.
        db.session.expire_all()
        return response


@pytest.fixture
def app_factory(
    database_url: str, tmp_path: Path, clock: FrozenClock
) -> Iterator[Callable[..., Flask]]:
    """Make apps on this test's database; keyword arguments override settings."""
    made: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        settings: dict[str, Any] = {
            "DATABASE_URL": database_url,
            "STORAGE_URL": (tmp_path / "storage").as_uri(),
            "SECRET_KEY": "test-secret-key-" + "x" * 32,
            "SITE_URL": "http://greenlight.test",
            "CLOCK": clock,
            "TESTING": True,
            # Jobs run at once, in the process that enqueued them (after its commit); the
            # worker tests start real `flask worker` processes instead.
            "QUEUE_IMMEDIATE": True,
            # Real scrypt, at a cost that keeps hundreds of sign-ins quick; production keeps
            # werkzeug's default.
            "PASSWORD_HASH_METHOD": "scrypt:1024:8:1",
        }
        settings.update(overrides)
        app = create_app(settings, instance_path=tmp_path / "instance", environ={})
        app.test_client_class = FreshContextClient
        with app.app_context():
            app_storage().init(cors_origins=[settings["SITE_URL"]])
        made.append(app)
        return app

    yield make
    for app in made:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(app_factory: Callable[..., Flask]) -> Iterator[Flask]:
    app = app_factory()
    with app.app_context():
        yield app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
