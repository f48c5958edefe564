"""The decision log for admins: filter, page through, verify the chain, download."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import Response, flash, redirect, render_template, request, stream_with_context, url_for
from sqlalchemy import Select
from werkzeug.wrappers import Response as BaseResponse
from wtforms import Form, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, ValidationError

from approval import audit, paging
from approval.clock import utcnow
from approval.forms import DayField, IdField
from approval.models import AuditEvent, Role, User
from approval.web import roles_required

from . import bp
from .forms import VerifyForm

PAGE_SIZE = 50
FILTERS = ("clip", "actor", "action", "since", "until")
EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


class AuditFilterForm(Form):
    """The audit page's filters. A plain GET form: it reads, so there is no CSRF to check."""

    clip = IdField("Clip number", validators=[Optional()])
    actor = StringField("Actor's email", validators=[Optional(), Length(max=254)])
    action = SelectField(
        "Action",
        choices=[
            SelectChoice("", "Any action"),
            *(SelectChoice(action, label) for action, label in audit.ACTIONS.items()),
        ],
        default="",
        validators=[Optional()],
    )
    since = DayField("From (UTC)", validators=[Optional()])
    until = DayField("To (UTC, inclusive)", validators=[Optional()])

    def validate_until(self, field: DayField) -> None:
        if field.data and self.since.data and field.data < self.since.data:
            raise ValidationError("The end date must not be before the start date.")


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _query(form: AuditFilterForm) -> Select[tuple[AuditEvent]] | None:
    """The filtered log, or None when the filters are wrong (their errors go on the form)."""
    if not form.validate():
        return None
    actor_id = None
    if form.actor.data and form.actor.data.strip():
        actor = User.by_email(form.actor.data)
        if actor is None:
            form.actor.errors = ["No account has this email."]
            return None
        actor_id = actor.id
    return audit.filtered(
        since=_midnight(form.since.data) if form.since.data else None,
        until=_midnight(form.until.data + timedelta(days=1)) if form.until.data else None,
        clip_id=form.clip.data,
        actor_id=actor_id,
        action=form.action.data or None,
    )


def _filter_args() -> dict[str, str]:
    """The filters in the address, to carry over to paging and download links."""
    return {name: value for name, value in request.args.items() if name in FILTERS and value}


def _page(verify_form: VerifyForm, status: int = 200) -> tuple[str, int]:
    """The audit page, its filters read from the address."""
    form = AuditFilterForm(request.args)
    query = _query(form)
    page = (
        audit.newest_first(query, "admin.audit", cursor=request.args.get("cursor"), size=PAGE_SIZE)
        if query is not None
        else paging.Page([], None, None)
    )
    html = render_template(
        "admin/audit.html",
        form=form,
        page=page,
        filters=_filter_args(),
        head=audit.head_hash(),
        event_count=audit.event_count(),
        verify_form=verify_form,
    )
    return html, status if query is not None else 400


@bp.get("/audit")
@roles_required(Role.ADMIN)
def audit_log() -> tuple[str, int]:
    """The log, newest first, filtered and paged by keyset; the head hash; verify and download."""
    return _page(VerifyForm(formdata=None))


@bp.post("/audit/verify")
@roles_required(Role.ADMIN)
def audit_verify() -> BaseResponse | tuple[str, int]:
    """Walk the whole chain now, through a kept head if one is given, and say whether it holds."""
    form = VerifyForm()
    if not form.validate_on_submit():  # CSRFProtect has checked the token already
        return _page(form, 400)
    result = audit.verify(expect=form.checkpoint)
    checkpoint = result.checkpoint()
    if checkpoint is not None:
        through = (
            f" It passes through the kept head ({form.checkpoint})." if form.checkpoint else ""
        )
        flash(
            f"The chain holds: {result.events} events, ending in {result.head}.{through} "
            f"Checkpoint to keep: {checkpoint.line()}",
            "success",
        )
    elif result.ok:
        flash("The chain holds: the log is empty.", "success")
    else:
        flash(f"The chain is broken: {result.problem}.", "error")
    return redirect(url_for("admin.audit_log"))


@bp.get("/audit/export.<any(csv, jsonl):fmt>")
@roles_required(Role.ADMIN)
def audit_export(fmt: str) -> BaseResponse:
    """Download the filtered log, oldest first, streamed a batch of rows at a time."""
    query = _query(AuditFilterForm(request.args))
    if query is None:
        # The page shows what is wrong with the filters.
        return redirect(url_for("admin.audit_log", **_filter_args()))
    name = f"greenlight-audit-{utcnow():%Y%m%dT%H%M%SZ}.{fmt}"
    return Response(
        stream_with_context(audit.export(query, fmt)),
        content_type=EXPORT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
