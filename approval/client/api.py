"""A thin JSON client for /api/v1 that turns problem documents into exceptions."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import requests

USER_AGENT = "greenlight-cli/1"
TIMEOUT = 60  # seconds: verification of a large clip runs inside the completion request
COMPLETE_TIMEOUT = 600
#: A 429 (a rate limit) or 503 (a service the server needs is away) changed nothing, so the
#: request is sent again after the Retry-After the server gives, this many times at most.
RETRIES = 3
#: A longer wait is not sat through: the command fails at once with the server's reason.
MAX_RETRY_WAIT = 30
RETRIED_STATUSES = (429, 503)


class ApiFailure(Exception):
    """The server refused, or could not be reached; str() is the reason for a person."""

    def __init__(
        self, status: int, detail: str, *, title: str = "", body: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.body = body or {}

    @property
    def field_errors(self) -> list[dict[str, str]]:
        errors = self.body.get("errors")
        return errors if isinstance(errors, list) else []


def _reason(response: requests.Response) -> ApiFailure:
    """The problem document's detail, or what little a non-API answer says."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("detail"), str):
        return ApiFailure(
            response.status_code, body["detail"], title=str(body.get("title", "")), body=body
        )
    if response.is_redirect:
        where = response.headers.get("Location", "elsewhere")
        return ApiFailure(
            response.status_code,
            f"the server redirected to {where}; is this the Greenlight address?",
        )
    snippet = " ".join(response.text.split())[:200]
    return ApiFailure(
        response.status_code,
        f"HTTP {response.status_code} {response.reason}" + (f": {snippet}" if snippet else ""),
    )


class Client:
    """Calls to one server with one token."""

    def __init__(
        self,
        url: str,
        token: str,
        session: requests.Session | None = None,
        *,
        notice: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = url.rstrip("/")
        self.notice = notice or (lambda text: print(text, file=sys.stderr))
        self.sleep = sleep
        self.session = session or requests.Session()
        self.session.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json",
                "User-Agent": USER_AGENT,
            }
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        timeout: float = TIMEOUT,
    ) -> Any:
        """The decoded JSON reply (None for 204); ApiFailure for anything but success.

        Busy answers are tried again here rather than by urllib3's Retry, which would wait
        however long Retry-After says and without a word: here a person sees why it waits.
        """
        for attempt in range(RETRIES + 1):
            try:
                response = self.session.request(
                    method,
                    self.url + path,
                    json=json,
                    params=params,
                    timeout=timeout,
                    allow_redirects=False,  # an API never redirects; a login page would
                )
            except requests.RequestException as exc:
                raise ApiFailure(0, f"could not reach {self.url}: {_short(exc)}") from None
            wait = _retry_after(response)
            if wait is None or attempt == RETRIES:
                break
            self.notice(
                f"{self.url} answered {response.status_code} {response.reason}; "
                f"trying again in {wait} s"
            )
            self.sleep(wait)
        if not 200 <= response.status_code < 300:
            raise _reason(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiFailure(
                response.status_code, f"{self.url} did not answer with JSON; is it Greenlight?"
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.call("GET", path, params=params or None)

    def post(self, path: str, body: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.call("POST", path, json=body, **kwargs)


def _retry_after(response: requests.Response) -> int | None:
    """Seconds to wait before sending again, if this answer is worth waiting out."""
    if response.status_code not in RETRIED_STATUSES:
        return None
    try:
        wait = int(response.headers.get("Retry-After", ""))
    except ValueError:  # absent, or an HTTP date: no promise of when to come back
        return None
    return max(wait, 1) if wait <= MAX_RETRY_WAIT else None


def _short(exc: Exception) -> str:
    """The innermost reason of a requests error, without urllib3's nesting."""
    reason: BaseException = exc
    while reason.__context__ is not None and reason.__context__ is not reason:
        reason = reason.__context__
    text = str(reason) or type(reason).__name__
    return text[:300]
