"""The account page's API tokens: list with last use, create (shown once), revoke."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from approval.clock import utcnow
from approval.forms import ActionForm
from approval.ops import tokens
from approval.ops.errors import Refused
from approval.web import show_refusal

from . import bp

EXPIRY_CHOICES = [
    SelectChoice("30", "In 30 days"),
    SelectChoice("90", "In 90 days"),
    SelectChoice("365", "In a year"),
    SelectChoice("never", "Never"),
]


class TokenForm(FlaskForm):
    name = StringField(
        "Name",
        validators=[DataRequired(), Length(max=tokens.MAX_NAME_LENGTH)],
        description="Where it is used, e.g. “laptop greenlight CLI”.",
    )
    expiry = SelectField("Expires", choices=EXPIRY_CHOICES, default="90")

    def expires_in_days(self) -> int | None:
        return None if self.expiry.data == "never" else int(self.expiry.data or 90)


def _page(form: TokenForm, *, new_token: str | None = None, status: int = 200) -> tuple[str, int]:
    html = render_template(
        "auth/tokens.html",
        form=form,
        tokens=tokens.for_user(current_user),
        state=tokens.state,
        action_form=ActionForm(),
        new_token=new_token,
        now=utcnow(),
    )
    return html, status


@bp.get("/account/tokens")
@login_required
def tokens_page() -> tuple[str, int]:
    """One's own API tokens, with when each was last used."""
    return _page(TokenForm())


@bp.post("/account/tokens")
@login_required
def create_token() -> BaseResponse | tuple[str, int]:
    """Make a token and show it, this once; only its hash is kept."""
    form = TokenForm()
    if not form.validate_on_submit():
        return _page(form, status=400)
    try:
        _, raw = tokens.create(
            current_user,
            name=form.name.data or "",
            expires_in_days=form.expires_in_days(),
            actor=current_user,
        )
    except Refused as exc:
        show_refusal(exc, form, default_field="name")
        return _page(form, status=400)
    html, status = _page(TokenForm(formdata=None), new_token=raw)
    response = BaseResponse(html, status=status, mimetype="text/html")
    # The token is in this page only: no cache, no back-button copy.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id: int) -> BaseResponse:
    """Revoke one of one's own tokens; it stops working with the next request.

    Someone else's token is not found (404), like anyone else's clip or link.
    """
    token = tokens.find(token_id, owner=current_user)
    tokens.revoke(token, actor=current_user)
    flash(f"The token “{token.name}” is revoked; it stops working at once.", "success")
    return redirect(url_for("auth.tokens_page"))
