"""Rate limits read from the settings, keyed by caller, and failure-only limits without a race.

Flask-Limiter's `deduct_when` tests the count before a request and adds to it only once the
response is known, so every attempt in flight at once passes the test: twelve concurrent
wrong passwords got fourteen attempts through a limit of five (tests/test_overload.py). A
`failures_only` limit counts each attempt as it arrives instead, so a burst gets exactly the
limit, and gives back the count of an attempt that turned out to succeed.

Only the API says how much of its limit is left (X-RateLimit-*): a program can pace itself by
it, a person reads the 429 page. Reading the count back is two more trips to the store, which
share links, under the heaviest anonymous load, are spared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from flask_login import current_user
from limits.strategies import FixedWindowRateLimiter

from .extensions import limiter
from .web import client_address

#: Scopes of the failure-only limits, each with its test of a successful response.
_GIVE_BACK: dict[str, Callable[[Response], bool]] = {}


def configured(setting: str) -> Callable[[], str]:
    """A limit read from the settings at each request, so tests and deployments can set it."""
    return lambda: str(current_app.config[setting])


def caller_key() -> str:
    """Whoever is calling: the signed-in account (an API token's owner), else the address.

    Per account, not per token or session: more tokens or browsers do not buy more requests.
    """
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"address:{client_address() or '-'}"


#: Every API operation, per caller (checked once the caller is known): GREENLIGHT_API_RATE_LIMIT.
api_calls = limiter.shared_limit(configured("API_RATE_LIMIT"), scope="api", key_func=caller_key)
#: Starting an upload or asking for a fresh ticket, on the pages and the API together.
upload_tickets = limiter.shared_limit(
    configured("UPLOAD_RATE_LIMIT"), scope="upload-tickets", key_func=caller_key, methods=["POST"]
)


def failures_only(
    setting: str, scope: str, key: Callable[[], str], succeeded: Callable[[Response], bool]
) -> Any:
    """A limit on failed POSTs (`setting`) that holds however many arrive at once."""
    _GIVE_BACK[scope] = succeeded
    return limiter.shared_limit(configured(setting), scope=scope, key_func=key, methods=["POST"])


def _give_back_successes(response: Response) -> Response:
    """Uncount, for each failure-only limit this request passed, an attempt that succeeded."""
    for checked in limiter.current_limits:
        succeeded = _GIVE_BACK.get(checked.request_args[-1])
        if succeeded is None or checked.breached or not succeeded(response):
            continue
        strategy = limiter.limiter
        # A fixed window is one counter per key; the other strategies could not be given back.
        assert isinstance(strategy, FixedWindowRateLimiter)
        strategy.storage.incr(checked.key, checked.limit.get_expiry(), amount=-1)
    return response


def _api_rate_headers(response: Response) -> Response:
    """Tell an API caller its limit, what remains of it and when it resets (epoch seconds).

    Retry-After is left to the 429 handler, which never says less than a second.
    """
    checked = limiter.current_limit
    if request.blueprint != "api" or checked is None:
        return response
    response.headers["X-RateLimit-Limit"] = str(checked.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(checked.remaining)
    response.headers["X-RateLimit-Reset"] = str(checked.reset_at)
    return response


def install(app: Flask) -> None:
    """Give back successful attempts (after Flask-Limiter has counted them), then write the API's
    headers from the counts as they stand."""
    app.after_request(_api_rate_headers)  # after_request runs last-registered first
    app.after_request(_give_back_successes)
