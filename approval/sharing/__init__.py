"""Public share links (/s/<token>) and their management on clip pages."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("sharing", __name__)

from . import views  # noqa: E402, F401  # routes register themselves on bp
