"""No cache, shared or the browser's own, keeps a page meant for one person.

Every answer to a signed-in caller (a page, a redirect, an API reply) and every page that
shows a secret to anyone (a set-password link's page) is sent `Cache-Control: private,
no-store`, unless its view chose a Cache-Control of its own: stored media is revalidated each
time (delivery.CACHE_CONTROL), static files are `no-cache`, share pages set theirs.
"""

from __future__ import annotations

from flask import Flask, Response, current_app, g, request, session

NO_STORE = "private, no-store"

#: Pages that show a secret to whoever holds the link, signed in or not.
SECRET_ENDPOINTS = frozenset({"auth.set_password", "sharing.page"})


def _carries_a_person() -> bool:
    """Whether this request is someone's own: a signed-in session, a remember cookie, a token.

    Asked of the request alone, never of the database, so the header is right even on the
    503 page of a request whose database went away.
    """
    loaded = g.get("_login_user")  # Flask-Login's per-request user, once anything asked
    if loaded is not None and loaded.is_authenticated:
        return True
    return (
        "_user_id" in session
        or current_app.config["REMEMBER_COOKIE_NAME"] in request.cookies
        or "Authorization" in request.headers
    )


def keep_private_answers_unstored(response: Response) -> Response:
    """Add `private, no-store` to personal and secret answers that chose no caching of their own."""
    if "Cache-Control" in response.headers:
        return response
    if request.endpoint in SECRET_ENDPOINTS or _carries_a_person():
        response.headers["Cache-Control"] = NO_STORE
    return response


def install(app: Flask) -> None:
    app.after_request(keep_private_answers_unstored)
