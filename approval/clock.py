"""The one source of "now", so tests can freeze time instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import current_app, has_app_context


def utcnow() -> datetime:
    """Return the current time as a timezone-aware UTC datetime (the app's clock if set)."""
    if has_app_context():
        clock = current_app.config.get("CLOCK")
        if clock is not None:
            return clock()
    return datetime.now(UTC)
