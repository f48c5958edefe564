"""People management: invite, roles, deactivate, fresh set-password links."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy import select
from werkzeug.wrappers import Response as BaseResponse

from approval.extensions import db
from approval.forms import ActionForm
from approval.models import Clip, ClipStatus, Role, User
from approval.ops import workflow
from approval.ops.errors import InvalidInput, Refused
from approval.ops.people import (
    create_user,
    everyone,
    issue_password_link,
    set_active,
    set_roles,
)
from approval.web import password_link_url, roles_required, show_refusal

from . import bp
from .forms import InviteForm, ReleaseHoldForm, RolesForm


@bp.get("/people")
@roles_required(Role.ADMIN)
def people() -> str:
    """Everyone, with roles and state, and the invite form."""
    users = everyone()
    return render_template(
        "admin/people.html", users=users, invite_form=InviteForm(), action_form=ActionForm()
    )


@bp.post("/people")
@roles_required(Role.ADMIN)
def invite() -> BaseResponse | tuple[str, int] | str:
    """Create an account and show its one-time set-password link."""
    form = InviteForm()
    if not form.validate_on_submit():
        users = everyone()
        page = render_template(
            "admin/people.html", users=users, invite_form=form, action_form=ActionForm()
        )
        return page, 400
    try:
        user = create_user(
            form.email.data or "",
            form.display_name.data or "",
            [Role(value) for value in form.roles.data or []],
            actor=current_user,
        )
        token = issue_password_link(user, actor=current_user)
    except Refused as exc:
        status = show_refusal(exc, form, default_field="email")
        users = everyone()
        page = render_template(
            "admin/people.html", users=users, invite_form=form, action_form=ActionForm()
        )
        return page, status
    return render_template("admin/invited.html", user=user, link=password_link_url(token))


@bp.get("/people/<int:user_id>")
@roles_required(Role.ADMIN)
def person(user_id: int) -> str:
    """One account: its roles, state and actions."""
    user = db.get_or_404(User, user_id)
    form = RolesForm(roles=[role.value for role in user.roles])
    return render_template("admin/person.html", user=user, form=form, action_form=ActionForm())


@bp.post("/people/<int:user_id>/roles")
@roles_required(Role.ADMIN)
def change_roles(user_id: int) -> BaseResponse | tuple[str, int]:
    """Replace an account's roles with the ticked ones."""
    user = db.get_or_404(User, user_id)
    form = RolesForm()
    if form.validate_on_submit():
        wanted = {Role(value) for value in form.roles.data or []}
        try:
            set_roles(user, add=wanted, remove=user.roles - wanted, actor=current_user)
        except Refused as exc:
            show_refusal(exc, form, default_field="roles")
        else:
            flash(f"Roles of {user.email} saved.", "success")
            return redirect(url_for("admin.person", user_id=user.id))
    page = render_template("admin/person.html", user=user, form=form, action_form=ActionForm())
    return page, 400


@bp.post("/people/<int:user_id>/active")
@roles_required(Role.ADMIN)
def toggle_active(user_id: int) -> BaseResponse:
    """Deactivate an active account or reactivate a deactivated one."""
    user = db.get_or_404(User, user_id)
    if ActionForm().validate_on_submit():
        try:
            set_active(user, not user.active, actor=current_user)
        except Refused as exc:
            show_refusal(exc)
        else:
            state = "reactivated" if user.active else "deactivated"
            flash(f"{user.email} is {state}.", "success")
    return redirect(url_for("admin.person", user_id=user.id))


@bp.post("/people/<int:user_id>/password-link")
@roles_required(Role.ADMIN)
def new_password_link(user_id: int) -> BaseResponse | str:
    """Issue a fresh one-time set-password link (the older one stops working)."""
    user = db.get_or_404(User, user_id)
    if not ActionForm().validate_on_submit():
        return redirect(url_for("admin.person", user_id=user.id))
    try:
        token = issue_password_link(user, actor=current_user)
    except Refused as exc:
        show_refusal(exc)
        return redirect(url_for("admin.person", user_id=user.id))
    return render_template("admin/invited.html", user=user, link=password_link_url(token))


@bp.get("/held")
@roles_required(Role.ADMIN)
def held_clips() -> str:
    """Clips GREENLIGHT_PROVENANCE=require keeps out of the queue, oldest first."""
    clips = db.session.scalars(
        select(Clip)
        .where(Clip.status == ClipStatus.WAITING, Clip.provenance_held.is_(True))
        .order_by(Clip.submitted_at, Clip.id)
        .limit(200)
    ).all()
    return render_template("admin/held.html", clips=clips)


@bp.post("/clips/<int:clip_id>/provenance-release")
@roles_required(Role.ADMIN)
def release_hold(clip_id: int) -> BaseResponse:
    """Let a held clip into the queue despite its Content Credentials, with a logged reason."""
    clip = db.get_or_404(Clip, clip_id)
    form = ReleaseHoldForm()
    if not form.validate_on_submit():
        flash("Give a reason for letting the clip through.", "error")
        return redirect(url_for("clips.detail", clip_id=clip.id))
    try:
        workflow.release_provenance_hold(clip, current_user, form.reason.data or "")
    except InvalidInput as exc:
        flash(exc.message, "error")
        return redirect(url_for("clips.detail", clip_id=clip.id))
    flash("The clip is in the review queue.", "success")
    return redirect(url_for("clips.detail", clip_id=clip.id))
