"""The admin clip browser, and takedowns behind a confirmation that names the clip."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import Form, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, Length

from approval import paging
from approval.clock import utcnow
from approval.extensions import db
from approval.models import Clip, ClipStatus, Role
from approval.ops import clip_search, workflow
from approval.ops.errors import InvalidInput, StateConflict
from approval.ops.transitions import describe
from approval.web import roles_required

from . import bp

#: The search's fields, as they appear in the address and are carried to the next page.
SEARCH_ARGS = ("q", "tester", "status", "sha256")


class ClipSearchForm(Form):
    """The browser's search: a GET form, so it is bookmarkable and needs no CSRF token."""

    q = StringField("Title or prompt words")
    tester = StringField("Tester (name or email)")
    status = SelectField(
        "Status",
        choices=[
            SelectChoice("", "Any status"),
            *(SelectChoice(status.value, status.label) for status in ClipStatus),
        ],
        default="",
    )
    sha256 = StringField("SHA-256 starts with", description="At least 4 hexadecimal characters.")


class ConfirmTakedownForm(FlaskForm):
    reason = StringField(
        "Reason for the takedown",
        description="The tester reads it, and it goes into the audit log.",
        validators=[
            DataRequired("Give a reason for the takedown; the tester reads it."),
            Length(max=2000),
        ],
    )


def _search_args() -> dict[str, str]:
    return {name: value for name in SEARCH_ARGS if (value := request.args.get(name, "").strip())}


@bp.get("/clips")
@roles_required(Role.ADMIN)
def clips() -> tuple[str, int]:
    """Every clip, newest first, searchable, a keyset page at a time."""
    form = ClipSearchForm(request.args)
    args = _search_args()
    status = 200
    try:
        search = clip_search.parse(**{name: request.args.get(name, "") for name in SEARCH_ARGS})
    except InvalidInput as refused:
        for name, message in refused.errors.items():
            form[name].errors = [message[0].upper() + message[1:] + "."]
        page: paging.Page[Clip] = paging.Page([], None, None)
        status, search = 400, None
    else:
        page = clip_search.page(search, cursor=request.args.get("cursor"))
    html = render_template(
        "admin/clips.html", form=form, page=page, args=args, searching=bool(args), now=utcnow()
    )
    return html, status


def _approved(clip_id: int) -> Clip:
    clip = db.get_or_404(Clip, clip_id)
    if clip.status != ClipStatus.APPROVED:
        raise StateConflict(
            f"Only an approved clip can be taken down. {describe(clip, current_user)}", clip
        )
    return clip


@bp.get("/clips/<int:clip_id>/take-down")
@roles_required(Role.ADMIN)
def confirm_take_down(clip_id: int) -> str:
    """The confirmation: which clip, what happens to its links, and the reason to give."""
    clip = _approved(clip_id)
    return render_template("admin/take_down.html", clip=clip, form=ConfirmTakedownForm())


@bp.post("/clips/<int:clip_id>/take-down")
@roles_required(Role.ADMIN)
def take_down(clip_id: int) -> BaseResponse | tuple[str, int]:
    """Take an approved clip down; its share links stop working with the next request."""
    clip = _approved(clip_id)
    form = ConfirmTakedownForm()
    if not form.validate_on_submit():
        return render_template("admin/take_down.html", clip=clip, form=form), 422
    workflow.take_down(clip, current_user, form.reason.data or "")
    flash(f"“{clip.title}” is taken down. Its share links no longer work.", "success")
    return redirect(url_for("clips.detail", clip_id=clip.id))
