"""The database each test runs on: SQLite copies of one migrated template, or PostgreSQL.

Loaded from tests/conftest.py's ``pytest_plugins``. The suite runs on SQLite by default and on
PostgreSQL when GREENLIGHT_TEST_DATABASE_URL names one. Either way the schema is built by the
Alembic migrations, so they are tested too.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade

from approval import create_app
from approval.extensions import db

PG_URL = os.environ.get("GREENLIGHT_TEST_DATABASE_URL", "")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


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
    """On the PostgreSQL pass, run only tests that touch the database; the rest ran already.

    Of the browser tests only the journey runs again there: the others test what the browser
    does with the pages, which the database does not change, and they are the slowest tests.
    """
    if not PG_URL:
        for item in items:
            if item.get_closest_marker("postgres"):
                item.add_marker(
                    pytest.mark.skip(reason="needs PostgreSQL: set GREENLIGHT_TEST_DATABASE_URL")
                )
        return
    keep = [
        item
        for item in items
        if "database_url" in getattr(item, "fixturenames", ())
        and (item.path.parent.name != "e2e" or item.path.name == "test_journey.py")
    ]
    dropped = [item for item in items if item not in keep]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


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
