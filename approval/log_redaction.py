"""Secrets that travel in URLs leave only a short prefix in the logs: `/s/abcd…`.

Share tokens and set-password tokens are stored hashed, and upload tickets are bearer
credentials; a log line holding the whole of one would undo that. Redacted: the token in
`/s/<token>` (and its media and poster), `/set-password/<token>`, and the `ticket=` query
parameter of an app upload. The prefix is enough to tell two links apart while reading a log.

`RedactSecrets` is a logging filter for our loggers and Werkzeug's development server;
`approval.gunicorn_logging.RedactingLogger` does the same for gunicorn's access log.
"""

from __future__ import annotations

import logging
import re

from flask import Flask
from flask.logging import default_handler

#: How much of a secret stays in the log: enough to tell links apart, too little to use.
KEPT = 4
ELLIPSIS = "…"

#: A ticket is the `ticket=` parameter of a URL's query, or the first one of a query string
#: on its own (gunicorn's `%(q)s`, QUERY_STRING).
_SECRET_IN_URL = re.compile(
    r"(?P<lead>/s/|/set-password/|(?:^|[?&;])ticket=)(?P<secret>[^/?&;#\s\"'<>]+)",
    re.IGNORECASE,
)


def _shorten(match: re.Match[str]) -> str:
    secret = match.group("secret")
    return match.group("lead") + secret[:KEPT] + ELLIPSIS


def redact(text: str) -> str:
    """`text` with every share token, set-password token and upload ticket cut to a prefix."""
    return _SECRET_IN_URL.sub(_shorten, text)


class RedactSecrets(logging.Filter):
    """Rewrite a record's message, once formatted, so no secret from a URL reaches a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


REDACT = RedactSecrets()

#: Loggers that write request lines: Werkzeug's development server (`flask run`).
REQUEST_LOGGERS = ("werkzeug",)


def install(app: Flask) -> None:
    """Redact the development server's request lines and whatever the app itself logs.

    The filter sits on Werkzeug's logger (its records are logged there directly) and on the
    handler Flask gives the app's logger, through which every `approval.*` logger writes.
    """
    for name in REQUEST_LOGGERS:
        logger = logging.getLogger(name)
        if REDACT not in logger.filters:
            logger.addFilter(REDACT)
    for handler in (default_handler, *app.logger.handlers):
        if REDACT not in handler.filters:
            handler.addFilter(REDACT)
