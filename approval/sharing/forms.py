"""The form that makes a share link."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional

EXPIRY_CHOICES = [
    SelectChoice("never", "Never"),
    SelectChoice("1", "In 1 day"),
    SelectChoice("7", "In 7 days"),
    SelectChoice("30", "In 30 days"),
    SelectChoice("date", "On a date…"),
]


class ShareLinkForm(FlaskForm):
    label = StringField(
        "Label", validators=[Optional(), Length(max=100)], description="Who or where it is for."
    )
    expiry = SelectField("Expires", choices=EXPIRY_CHOICES, default="7")
    expires_on = DateField("Expiry date", validators=[Optional()])
    passphrase = PasswordField(
        "Passphrase (optional)",
        validators=[Optional(), Length(max=200)],
        description="Viewers must type it before the clip plays.",
    )
    allow_download = BooleanField("Allow download")

    def validate(self, extra_validators: Any = None) -> bool:
        # Optional() on the date ends its own checks when empty, so the pairing is checked here.
        valid = super().validate(extra_validators)
        if self.expiry.data == "date" and self.expires_on.data is None:
            self.expires_on.errors = [*self.expires_on.errors, "Pick the expiry date."]
            return False
        return valid

    def expires_at(self, now: datetime) -> datetime | None:
        """The chosen expiry as a UTC moment; a date means the end of that day (UTC)."""
        if self.expiry.data == "never":
            return None
        if self.expiry.data == "date" and self.expires_on.data is not None:
            return datetime.combine(self.expires_on.data, time.max, tzinfo=UTC)
        return now + timedelta(days=int(self.expiry.data or 7))


class PassphraseForm(FlaskForm):
    passphrase = PasswordField("Passphrase", validators=[Length(max=10_000)])
