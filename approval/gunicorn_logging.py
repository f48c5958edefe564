"""gunicorn's logger with secrets cut from the access log (`--logger-class` in the Procfile).

Every atom of the access-log format that can hold a URL -- the request line `%(r)s`, the path
`%(U)s`, the query `%(q)s`, the referer `%(f)s`, any `{header}i` or `{variable}e` -- goes through
`log_redaction.redact`; credentials sent as headers never appear at all. The error log's
lines go through the same filter. Imported only by gunicorn, so the app needs none of it.
"""

from __future__ import annotations

import logging
from typing import Any

from gunicorn.glogging import Logger

from approval.log_redaction import REDACT, redact

#: Request headers that are credentials whole; a format that names them logs "-".
CREDENTIAL_HEADERS = frozenset({"{authorization}i", "{cookie}i", "{x-csrftoken}i"})


class RedactingLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's Logger, with share tokens, set-password tokens and upload tickets redacted."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for name, value in atoms.items():
            if name in CREDENTIAL_HEADERS:
                atoms[name] = "-"
            elif isinstance(value, str):
                atoms[name] = redact(value)
        return atoms

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # gunicorn's own error lines can quote a request ("Invalid request from … /s/…").
        error_log: logging.Logger = self.error_log
        if REDACT not in error_log.filters:
            error_log.addFilter(REDACT)
