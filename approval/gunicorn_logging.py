"""gunicorn's logger with secrets cut from the access log (`--logger-class` in the Procfile).

Every atom the access-log format names that can hold a URL -- the request line `%(r)s`, the
path `%(U)s`, the query `%(q)s`, the referer `%(f)s`, any `{header}i` or `{variable}e` -- goes
through `log_redaction.redact`; credentials sent as headers never appear at all. Atoms the
format does not name are not handed on, redacted or not: nothing writes them. The error log's
lines go through the same filter. Imported only by gunicorn, so the app needs none of it.
"""

from __future__ import annotations

import functools
import logging
import re
from typing import Any

from gunicorn.glogging import Logger

from approval.log_redaction import REDACT, redact

#: Request headers that are credentials whole; a format that names them logs "-".
CREDENTIAL_HEADERS = frozenset({"{authorization}i", "{cookie}i", "{x-csrftoken}i"})

#: `%(name)s` in a format, as gunicorn fills it in (any conversion, not only `s`).
_FORMAT_ATOM = re.compile(r"%\(([^)]*)\)")


@functools.lru_cache(maxsize=8)
def named_atoms(log_format: str) -> frozenset[str]:
    """The atoms a format names, as gunicorn looks them up: `{header}i`-style names lowercased."""
    names = _FORMAT_ATOM.findall(log_format)
    return frozenset(name.lower() if name.startswith("{") else name for name in names)


class RedactingLogger(Logger):  # type: ignore[misc]  # gunicorn ships no type hints
    """gunicorn's Logger, with share tokens, set-password tokens and upload tickets redacted."""

    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: Any) -> Any:
        """The atoms the access-log format names, redacted; gunicorn gives "-" for the rest.

        gunicorn makes an atom of every request and response header and environ variable, some
        fifty a request; redacting only the handful a line is made of was half this logger's
        time, and what is not handed on cannot leak through a handler that reads the record.
        """
        everything: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        atoms: dict[str, Any] = {}
        for name in named_atoms(self.cfg.access_log_format) & everything.keys():
            value = everything[name]
            if name in CREDENTIAL_HEADERS:
                atoms[name] = "-"
            elif isinstance(value, str):
                atoms[name] = redact(value)
            else:
                atoms[name] = value
        return atoms

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        # gunicorn's own error lines can quote a request ("Invalid request from … /s/…").
        error_log: logging.Logger = self.error_log
        if REDACT not in error_log.filters:
            error_log.addFilter(REDACT)
