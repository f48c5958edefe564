"""Reviewers' queue and review pages."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("review", __name__, url_prefix="/review")

from . import views  # noqa: E402, F401  # routes register themselves on bp
