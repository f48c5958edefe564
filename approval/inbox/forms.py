"""The inbox's one form: the queue digest preference."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField


class DigestForm(FlaskForm):
    wants_queue_digest = BooleanField(
        "Send me a daily summary of the review queue",
        description="How many clips are waiting and how long the oldest has waited; "
        "nothing on days when the queue is empty.",
    )
