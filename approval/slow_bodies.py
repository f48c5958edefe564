"""Give up on a request body that stops arriving, so a silent client cannot hold a thread.

gunicorn's gthread workers read a request's body on the request's own thread, from a blocking
socket with no timeout: a client that sends its headers and part of a body and then nothing
(gone without closing, or on purpose) held that thread until TCP gave up, and 16 of them held
a whole web host. This middleware gives every read of the body at most
GREENLIGHT_BODY_TIMEOUT seconds of silence, as nginx's `client_body_timeout` does, then
answers 408 and shuts the socket's reading side, so gunicorn does not wait for the rest either.

It bounds silence, not slowness: a body trickled a byte at a time keeps its thread, and so do
headers trickled before the app sees the request. That is the proxy's to refuse (README,
"Behind a reverse proxy"). Under any server but gunicorn (the test client), it does nothing.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.exceptions import RequestTimeout

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

STOPPED = (
    "The request's body stopped arriving for {wait}, so the server stopped waiting. "
    "Nothing was changed; please send it again."
)


def _seconds(seconds: float) -> str:
    return f"{seconds:g} second{'' if seconds == 1 else 's'}"


class StalledBody(RequestTimeout):
    """408: no byte of the body came for the configured time. Not an OSError, so Werkzeug's
    stream lets it through rather than calling it a disconnect."""


class _PatientInput:
    """wsgi.input whose every read waits at most `seconds` for the socket."""

    def __init__(self, stream: Any, sock: socket.socket, seconds: float) -> None:
        self._stream = stream
        self._sock = sock
        self._seconds = seconds

    def _guarded(self, read: Callable[..., Any], *args: Any) -> Any:
        previous = self._sock.gettimeout()
        self._sock.settimeout(self._seconds)
        try:
            return read(*args)
        except TimeoutError:
            # Nothing more will be read: gunicorn's drain of the unread rest then ends at once.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RD)
            raise StalledBody(STOPPED.format(wait=_seconds(self._seconds))) from None
        finally:
            with contextlib.suppress(OSError):
                self._sock.settimeout(previous)

    def read(self, size: int | None = -1) -> bytes:
        return self._guarded(self._stream.read, size)  # type: ignore[no-any-return]

    def readline(self, size: int | None = -1) -> bytes:
        return self._guarded(self._stream.readline, size)  # type: ignore[no-any-return]

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return self._guarded(self._stream.readlines, hint)  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class BodyTimeout:
    """WSGI middleware: bodies read through gunicorn give up after `seconds` of silence."""

    def __init__(self, app: WsgiApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        sock = environ.get("gunicorn.socket")
        if isinstance(sock, socket.socket):
            environ["wsgi.input"] = _PatientInput(environ["wsgi.input"], sock, self.seconds)
        return self.app(environ, start_response)
