"""Forms for managing people."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, Field, StringField
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from approval import audit
from approval.forms import MultiCheckboxField, role_choices


class InviteForm(FlaskForm):
    email = EmailField(
        "Email", validators=[DataRequired(), Email(check_deliverability=False), Length(max=254)]
    )
    display_name = StringField("Name", validators=[DataRequired(), Length(max=100)])
    roles = MultiCheckboxField(
        "Roles", choices=role_choices(), validators=[DataRequired("Pick at least one role.")]
    )


class RolesForm(FlaskForm):
    roles = MultiCheckboxField(
        "Roles", choices=role_choices(), validators=[DataRequired("Pick at least one role.")]
    )


class ReleaseHoldForm(FlaskForm):
    reason = StringField(
        "Why let it through without trusted credentials", validators=[Length(max=2000)]
    )


class VerifyForm(FlaskForm):
    """Verify the chain, optionally through a head kept outside the database."""

    expected_head = StringField(
        "Kept head (optional)",
        description="A checkpoint line or hash you kept: the chain must still pass through it.",
        validators=[Optional(), Length(max=300)],
    )

    #: The parsed kept head once the form validates; None when the field was left empty.
    checkpoint: audit.Checkpoint | None = None

    def validate_expected_head(self, field: Field) -> None:
        if not field.data or not field.data.strip():
            return
        try:
            self.checkpoint = audit.parse_checkpoint(field.data)
        except audit.BadCheckpoint as exc:
            raise ValidationError(str(exc)[0].upper() + str(exc)[1:] + ".") from None
