"""Forms for signing in and managing one's own account."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from approval.ops.people import MIN_PASSWORD_LENGTH


class LoginForm(FlaskForm):
    email = EmailField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    remember = BooleanField("Keep me signed in on this device for 14 days")
    next = HiddenField()


class SetPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        # The length rule lives in people.check_password_strength, shared with the CLI.
        validators=[DataRequired(), Length(max=1024)],
        description=f"At least {MIN_PASSWORD_LENGTH} characters.",
    )
    confirm = PasswordField(
        "Repeat the new password",
        validators=[DataRequired(), EqualTo("password", message="The two passwords differ.")],
    )


class AccountForm(FlaskForm):
    display_name = StringField("Display name", validators=[DataRequired(), Length(max=100)])
    show_name_publicly = BooleanField("Show my display name on public share pages")


class ChangePasswordForm(SetPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=1024)])
