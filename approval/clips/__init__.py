"""Testers' clips: upload, versions, "My clips"."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("clips", __name__, url_prefix="/clips")

from . import comment_views, compare_views, views  # noqa: E402, F401  # routes register themselves on bp
