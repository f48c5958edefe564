"""The request is the unit of work: a view that returns commits once, one that raises rolls back.

As Indico's `RH.process`: operations only flush, and the commit happens here, inside the view's
call, so a commit that fails (the database went away, a constraint) reaches the same error
handlers as any other failure. Mail and queued jobs wait for this commit (see jobqueue.py and
outbox.py), so nothing leaves for a change that did not happen. A view that catches a refusal
to show it on its form rolls back through `web.show_refusal` first, so no half of it is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, current_app
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response as BaseResponse

from approval.extensions import db


class AfterCommit:
    """A reply to build only once the commit is done, because it reports what the commit set
    off: "upload done" answers with the clip as the verification job left it, where the job
    ran at once (tests, QUEUE_IMMEDIATE), and as `verifying` where a worker will run it."""

    def __init__(self, build: Callable[[], ResponseReturnValue]) -> None:
        self.build = build


def _commit_when_done(view: Callable[..., Any]) -> Callable[..., BaseResponse]:
    @wraps(view)
    def run(*args: Any, **kwargs: Any) -> BaseResponse:
        returned = view(*args, **kwargs)
        if isinstance(returned, AfterCommit):
            db.session.commit()
            return current_app.make_response(returned.build())
        response = current_app.make_response(returned)
        db.session.commit()
        return response

    return run


def install(app: Flask) -> None:
    """Make every registered view (pages, API, static files) commit once when it returns."""
    for endpoint, view in list(app.view_functions.items()):
        app.view_functions[endpoint] = _commit_when_done(view)
