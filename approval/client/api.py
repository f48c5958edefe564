"""A thin JSON client for /api/v1 that turns problem documents into exceptions."""

from __future__ import annotations

from typing import Any

import requests

USER_AGENT = "greenlight-cli/1"
TIMEOUT = 60  # seconds: verification of a large clip runs inside the completion request
COMPLETE_TIMEOUT = 600


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

    def __init__(self, url: str, token: str, session: requests.Session | None = None) -> None:
        self.url = url.rstrip("/")
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
        """The decoded JSON reply (None for 204); ApiFailure for anything but success."""
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


def _short(exc: Exception) -> str:
    """The innermost reason of a requests error, without urllib3's nesting."""
    reason: BaseException = exc
    while reason.__context__ is not None and reason.__context__ is not reason:
        reason = reason.__context__
    text = str(reason) or type(reason).__name__
    return text[:300]
