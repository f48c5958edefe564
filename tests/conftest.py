"""Shared fixtures: an app on a clean, migrated database per test, and factories.

The suite runs on SQLite by default and on PostgreSQL when GREENLIGHT_TEST_DATABASE_URL names
one. Either way the schema is built by the Alembic migrations, so they are tested too.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade

from approval import create_app
from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import Clip, ClipStatus, Role, User, Verdict
from approval.ops import workflow
from approval.ops.people import create_user
from approval.ops.workflow import VerifiedMedia

pytest_plugins = ["tests.plugins.storage", "tests.plugins.media", "tests.plugins.workers"]

PG_URL = os.environ.get("GREENLIGHT_TEST_DATABASE_URL", "")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
PASSWORD = "correct horse battery staple"


def _pg_reachable(url: str) -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        engine = sa.create_engine(_driver_url(url), connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except sa.exc.OperationalError as exc:
        return str(exc.orig).strip().splitlines()[0]
    return None


def _driver_url(url: str) -> str:
    return re.sub(r"^postgresql(\+\w+)?://", "postgresql+psycopg://", url)


def pytest_report_header(config: pytest.Config) -> str:
    return f"greenlight database: {'PostgreSQL ' + PG_URL if PG_URL else 'SQLite'}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the PostgreSQL pass, run only tests that touch the database; the rest ran already."""
    if not PG_URL:
        for item in items:
            if item.get_closest_marker("postgres"):
                item.add_marker(
                    pytest.mark.skip(reason="needs PostgreSQL: set GREENLIGHT_TEST_DATABASE_URL")
                )
        return
    keep = [item for item in items if "database_url" in getattr(item, "fixturenames", ())]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


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


class FrozenClock:
    """A clock tests move by hand instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 30, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture(scope="session")
def _migrated_template(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Build the schema once per run through the migrations; tests get copies or truncations."""
    if PG_URL:
        reason = _pg_reachable(PG_URL)
        if reason is not None:
            if IN_CI:
                pytest.fail(f"PostgreSQL at {PG_URL} does not answer in CI: {reason}")
            pytest.skip(f"PostgreSQL at {PG_URL} does not answer: {reason}")
        engine = sa.create_engine(_driver_url(PG_URL))
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA public"))
        engine.dispose()
        url = PG_URL
    else:
        url = f"sqlite:///{tmp_path_factory.mktemp('template') / 'template.db'}"
    app = create_app(
        {"DATABASE_URL": url, "SECRET_KEY": "x" * 40},
        instance_path=tmp_path_factory.mktemp("template-instance"),
        environ={},
    )
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return url


def _reset_postgres(url: str) -> None:
    """Empty every table; replica mode lets TRUNCATE pass the audit log's guard triggers."""
    engine = sa.create_engine(_driver_url(url))
    with engine.begin() as conn:
        tables = [name for name in sa.inspect(conn).get_table_names() if name != "alembic_version"]
        conn.execute(sa.text("SET LOCAL session_replication_role = replica"))
        conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        conn.execute(
            sa.text("INSERT INTO audit_head (id, last_hash, event_count) VALUES (1, :h, 0)"),
            {"h": "0" * 64},
        )
    engine.dispose()


@pytest.fixture
def database_url(_migrated_template: str, tmp_path: Path) -> str:
    """A clean, migrated database for this test."""
    if PG_URL:
        _reset_postgres(_migrated_template)
        return _migrated_template
    template = Path(_migrated_template.removeprefix("sqlite:///"))
    target = tmp_path / "greenlight.db"
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


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


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    """Factory: make_user(Role.REVIEWER, email=..., active=...) with PASSWORD as password."""
    counter = iter(range(1, 10_000))

    def make(
        *roles: Role, email: str | None = None, active: bool = True, password: str = PASSWORD
    ) -> User:
        number = next(counter)
        user = create_user(
            email or f"person{number}@example.com",
            f"Person {number}",
            roles or (Role.TESTER,),
            actor=None,
            password=password,
        )
        user.active = active
        db.session.commit()
        return user

    return make


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


FAKE_MEDIA = VerifiedMedia(
    size_bytes=1234,
    sha256="ab" * 32,
    etag="etag-1",
    container="mp4",
    codec="h264",
    width=1920,
    height=1080,
    duration_seconds=2.0,
    fps=24.0,
    has_audio=False,
    poster_key=None,
)


@pytest.fixture
def make_clip(app: Flask, make_user: Callable[..., User]) -> Callable[..., Clip]:
    """Factory: make_clip(ClipStatus.APPROVED, tester=..., reviewer=...) through the workflow.

    The bytes are not real (tests that need real media upload them); every state is reached by
    the same workflow calls the app makes, so the audit chain stays whole.
    """
    counter = iter(range(1, 100_000))

    def make(
        status: ClipStatus = ClipStatus.WAITING,
        *,
        tester: User | None = None,
        reviewer: User | None = None,
        admin: User | None = None,
        title: str | None = None,
        previous: Clip | None = None,
        sha256: str | None = None,
        content: bytes | None = None,
    ) -> Clip:
        number = next(counter)
        tester = tester or make_user(Role.TESTER)
        clip = workflow.start_upload(
            tester, title=title or f"Clip {number}", generator="gen-1", previous=previous
        )
        if status == ClipStatus.UPLOADING:
            db.session.commit()
            return clip
        workflow.begin_verification(clip, tester)
        if status == ClipStatus.VERIFYING:
            db.session.commit()
            return clip
        if status == ClipStatus.FAILED:
            workflow.fail_verification(clip, "no video stream found")
            db.session.commit()
            return clip
        media = replace(FAKE_MEDIA, sha256=sha256 or f"{number:064x}")
        if content is not None:
            # Real bytes in storage, so delivery and the approved-bytes check have an object.
            store = app_storage()
            info = store.put_stream(clip.storage_key, io.BytesIO(content), content_type="video/mp4")
            poster_key = clip.storage_key.replace("clips/", "posters/", 1) + ".jpg"
            store.put_stream(poster_key, io.BytesIO(b"\xff\xd8poster"), content_type="image/jpeg")
            media = replace(
                media,
                size_bytes=info.size,
                etag=info.etag,
                sha256=hashlib.sha256(content).hexdigest(),
                poster_key=poster_key,
            )
        workflow.pass_verification(clip, media)
        if status == ClipStatus.WITHDRAWN:
            workflow.withdraw(clip, tester)
        if status in (
            ClipStatus.IN_REVIEW,
            ClipStatus.APPROVED,
            ClipStatus.REJECTED,
            ClipStatus.TAKEN_DOWN,
        ):
            reviewer = reviewer or make_user(Role.REVIEWER)
            workflow.claim(clip, reviewer)
            if status in (ClipStatus.APPROVED, ClipStatus.TAKEN_DOWN):
                with _approvals_required(app, 1):
                    workflow.decide(clip, reviewer, Verdict.APPROVE)
            if status == ClipStatus.REJECTED:
                workflow.decide(
                    clip, reviewer, Verdict.REJECT, category="quality", reason="Too blurry"
                )
            if status == ClipStatus.TAKEN_DOWN:
                workflow.take_down(clip, admin or make_user(Role.ADMIN), "Rights complaint")
        db.session.commit()
        return clip

    return make


@contextmanager
def _approvals_required(app: Flask, count: int) -> Iterator[None]:
    saved = app.config["APPROVALS_REQUIRED"]
    app.config["APPROVALS_REQUIRED"] = count
    try:
        yield
    finally:
        app.config["APPROVALS_REQUIRED"] = saved
