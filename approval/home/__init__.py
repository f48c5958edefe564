"""Landing pages per role and the health check."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("home", __name__)

from . import views  # noqa: E402, F401  # routes register themselves on bp
