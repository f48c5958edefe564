"""Sign-in, sign-out, set-password links and the account page."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("auth", __name__)

from . import tokens_views, views  # noqa: E402, F401  # routes register themselves on bp
