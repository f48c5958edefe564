"""Sign-in with rate limits, sign-out, one-time set-password links, own account."""

from __future__ import annotations

from flask import (
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.wrappers import Response as BaseResponse

from approval.models import User, normalise_email
from approval.ops import people, sessions
from approval.ops.errors import Refused
from approval.ops.people import (
    authenticate,
    find_password_link,
    record_failed_sign_in,
    redeem_password_link,
)
from approval.ops.sessions import end_sessions
from approval.rate_limits import failures_only
from approval.web import client_address, safe_next, show_refusal

from . import bp
from .forms import AccountForm, ChangePasswordForm, LoginForm, SetPasswordForm

SIGN_IN_FAILED = "Wrong email or password."


def _account_key() -> str:
    return "sign-in:" + normalise_email(request.form.get("email", ""))[:254]


def _address_key() -> str:
    return client_address() or "-"


def _account_and_address_key() -> str:
    return f"{_account_key()}|{_address_key()}"


def _signed_in(response: BaseResponse) -> bool:
    """Only failed attempts count towards the limits; a redirect means success."""
    return response.status_code == 302


@bp.route("/login", methods=["GET", "POST"])
# Tight per (account, address) and per address; per account only loosely, so that someone
# failing on purpose from elsewhere cannot lock the real person out.
@failures_only("LOGIN_RATE_LIMIT", "sign-in-account-address", _account_and_address_key, _signed_in)
@failures_only("LOGIN_ADDRESS_RATE_LIMIT", "sign-in-address", _address_key, _signed_in)
@failures_only("LOGIN_ACCOUNT_RATE_LIMIT", "sign-in-account", _account_key, _signed_in)
def login() -> BaseResponse | str:
    """Sign in; the same answer whichever of email or password was wrong."""
    if current_user.is_authenticated:
        return redirect(url_for("home.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = authenticate(form.email.data or "", form.password.data or "")
        if user is not None:
            target = safe_next(form.next.data)
            # A fresh session at sign-in: nothing from before (CSRF token included) carries over.
            session.clear()
            login_user(user, remember=bool(form.remember.data))
            return redirect(target or url_for("home.index"))
        record_failed_sign_in(form.email.data or "", client_address())
        form.password.errors = [SIGN_IN_FAILED]
    return render_template("auth/login.html", form=form)


@bp.post("/logout")
def logout() -> BaseResponse:
    """Sign out (a POST with CSRF, so no link elsewhere can sign someone out).

    Every session of the account ends, not only this browser's: a cookie copied from it, or a
    remember cookie left on another device, stops working too.
    """
    if current_user.is_authenticated:
        end_sessions(current_user)
    session.clear()
    logout_user()  # after clear(): it leaves the note that deletes the remember cookie
    flash("You are signed out.", "info")
    return redirect(url_for("auth.login"))


@bp.route("/set-password/<token>", methods=["GET", "POST"])
def set_password(token: str) -> BaseResponse | tuple[str, int] | str:
    """Choose a password through a one-time link from an admin."""
    try:
        link = find_password_link(token)
    except Refused as exc:
        return render_template("auth/link_invalid.html", message=exc.message), 410
    form = SetPasswordForm()
    if form.validate_on_submit():
        try:
            user = redeem_password_link(token, form.password.data or "")
        except Refused as exc:
            show_refusal(exc, form, default_field="password")
        else:
            session.clear()
            login_user(user)
            flash("Your password is set. Welcome to Greenlight.", "success")
            return redirect(url_for("home.index"))
    return render_template("auth/set_password.html", form=form, user=link.user)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account() -> BaseResponse | str:
    """One's own display name and whether public share pages show it."""
    form = AccountForm(obj=current_user)
    if form.validate_on_submit():
        current_user.display_name = (form.display_name.data or "").strip()
        current_user.show_name_publicly = bool(form.show_name_publicly.data)
        flash("Your profile is saved.", "success")
        return redirect(url_for("auth.account"))
    return render_template("auth/account.html", form=form, password_form=ChangePasswordForm())


@bp.post("/account/password")
@login_required
def change_password() -> BaseResponse | str:
    """Change one's own password, proving the current one first; other sessions end."""
    password_form = ChangePasswordForm()
    if password_form.validate_on_submit():
        try:
            people.change_password(
                current_user, password_form.current.data or "", password_form.password.data or ""
            )
        except Refused as exc:
            show_refusal(exc, password_form, default_field="password")
        else:
            _sign_in_again(current_user)
            flash("Your password is changed; you are signed out everywhere else.", "success")
            return redirect(url_for("auth.account"))
    form = AccountForm(obj=current_user, formdata=None)
    return render_template("auth/account.html", form=form, password_form=password_form)


@bp.post("/account/sign-out-everywhere")
@login_required
def sign_out_everywhere() -> BaseResponse:
    """End every other session and remember cookie of the account; this browser stays."""
    sessions.sign_out_everywhere(current_user)
    _sign_in_again(current_user)
    flash("Every other session of your account is signed out.", "success")
    return redirect(url_for("auth.account"))


def _sign_in_again(user: User) -> None:
    """Carry this browser over to the account's new session token (and remember cookie)."""
    user = getattr(user, "_get_current_object", lambda: user)()  # not the proxy to itself
    remembered = current_app.config["REMEMBER_COOKIE_NAME"] in request.cookies
    session.clear()
    login_user(user, remember=remembered)


def _no_referrer(response: Response) -> Response:
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


bp.after_request(_no_referrer)
