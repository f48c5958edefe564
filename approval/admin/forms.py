"""Forms for managing people."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, StringField
from wtforms.validators import DataRequired, Email, Length

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


class TakedownForm(FlaskForm):
    reason = StringField("Reason for the takedown", validators=[DataRequired(), Length(max=2000)])
