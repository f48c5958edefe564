"""Serving a stored object from local storage: where our answers follow RFC 9110 past Werkzeug.

The ordinary cases (ranges, 206/416, ETag and 304, odd ranges, downloads) are exercised through
the share links in test_share.py; these pin the corners delivery.py decides for itself.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask, request
from flask.testing import FlaskClient

from approval.delivery import serve_object
from approval.extensions import db
from approval.extensions import storage as app_storage
from approval.models import Clip, ClipStatus, User
from approval.ops import sharing

KEY = "clips/de/object"
CONTENT = bytes(range(256)) * 64  # 16,384 bytes with a recognisable pattern
SIZE = len(CONTENT)


@pytest.fixture
def served(app: Flask) -> FlaskClient:
    """A client for a route that serves KEY, with `?name=` as the download name."""
    app_storage().put_stream(KEY, io.BytesIO(CONTENT), content_type="video/mp4")

    @app.get("/_delivery")
    def deliver() -> Any:
        info = app_storage().head(KEY)
        return serve_object(
            KEY, info=info, content_type="video/mp4", filename=request.args.get("name")
        )

    return app.test_client()


def etag_of(client: FlaskClient) -> str:
    return str(client.head("/_delivery").headers["ETag"])


def test_a_suffix_longer_than_the_object_gets_all_of_it(served: FlaskClient) -> None:
    """RFC 9110 §14.1.3: bytes=-N past the start means the whole representation, not 416."""
    response = served.get("/_delivery", headers={"Range": f"bytes=-{SIZE + 5000}"})
    assert (response.status_code, response.headers["Content-Range"], response.get_data()) == (
        206,
        f"bytes 0-{SIZE - 1}/{SIZE}",
        CONTENT,
    )


@pytest.mark.parametrize("form", ["strong", "weak", "star", "in a list"])
@pytest.mark.parametrize("ranged", [False, True])
def test_a_matching_if_none_match_is_304_even_with_a_range(
    served: FlaskClient, form: str, ranged: bool
) -> None:
    """If-None-Match is compared weakly and evaluated before Range (RFC 9110 §13.2.2)."""
    etag = etag_of(served)
    value = {"strong": etag, "weak": f"W/{etag}", "star": "*", "in a list": f'"x", {etag}'}[form]
    headers = {"If-None-Match": value} | ({"Range": "bytes=100-199"} if ranged else {})
    assert served.get("/_delivery", headers=headers).status_code == 304


def test_a_304_keeps_the_validators_and_caching_headers(served: FlaskClient) -> None:
    etag = etag_of(served)
    response = served.get("/_delivery", headers={"If-None-Match": etag})
    assert {name: response.headers.get(name) for name in ("ETag", "Cache-Control")} == {
        "ETag": etag,
        "Cache-Control": "private, max-age=0, must-revalidate",
    }


def test_if_range_with_the_current_etag_gets_the_range(served: FlaskClient) -> None:
    headers = {"Range": "bytes=100-199", "If-Range": etag_of(served)}
    response = served.get("/_delivery", headers=headers)
    assert (response.status_code, response.get_data()) == (206, CONTENT[100:200])


@pytest.mark.parametrize("validator", ['"an-older-etag"', "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_if_range_that_does_not_match_gets_the_whole_object(
    served: FlaskClient, validator: str
) -> None:
    """We send no Last-Modified, so a date cannot show the client's copy is current either."""
    headers = {"Range": "bytes=100-199", "If-Range": validator}
    response = served.get("/_delivery", headers=headers)
    assert (response.status_code, response.get_data()) == (200, CONTENT)


@pytest.mark.parametrize("form", ["weak", "unquoted"])
def test_if_range_with_our_etag_weak_or_unquoted_gets_the_whole_object(
    served: FlaskClient, form: str
) -> None:
    """RFC 9110 §13.1.5: only a strong entity tag can match; Werkzeug lets these through."""
    etag = etag_of(served)
    validator = {"weak": f"W/{etag}", "unquoted": etag.strip('"')}[form]
    response = served.get("/_delivery", headers={"Range": "bytes=100-199", "If-Range": validator})
    assert (response.status_code, response.get_data()) == (200, CONTENT)


def test_if_range_that_does_not_match_ignores_an_unsatisfiable_range(served: FlaskClient) -> None:
    """A failed If-Range means the Range is ignored altogether, so there is nothing to refuse."""
    headers = {"Range": f"bytes={SIZE}-", "If-Range": "Wed, 21 Oct 2015 07:28:00 GMT"}
    response = served.get("/_delivery", headers=headers)
    assert (response.status_code, response.get_data()) == (200, CONTENT)


def test_an_unsatisfiable_range_is_416_with_the_length(served: FlaskClient) -> None:
    response = served.get("/_delivery", headers={"Range": f"bytes={SIZE}-"})
    assert (response.status_code, response.headers["Content-Range"], response.get_data()) == (
        416,
        f"bytes */{SIZE}",
        b"",
    )


def test_if_match_is_ignored(served: FlaskClient) -> None:
    """As before the move to Werkzeug, which would answer 412 and still send the body."""
    response = served.get("/_delivery", headers={"If-Match": '"someone-elses"'})
    assert (response.status_code, response.get_data()) == (200, CONTENT)


def test_head_sends_the_headers_of_the_get_and_no_body(served: FlaskClient) -> None:
    response = served.head("/_delivery", headers={"Range": "bytes=0-99"})
    assert (response.status_code, response.headers["Content-Length"], response.get_data()) == (
        206,
        "100",
        b"",
    )


def test_the_download_name_has_an_ascii_fallback_and_the_utf8_name(served: FlaskClient) -> None:
    """RFC 6266, in the very form S3 is told to send, so both backends name a download alike."""
    response = served.get('/_delivery?name=Café "x".mp4')
    assert response.headers["Content-Disposition"] == (
        "inline; filename=\"Caf x.mp4\"; filename*=UTF-8''Caf%C3%A9%20%22x%22.mp4"
    )


def test_no_date_header_is_added_for_the_server_to_duplicate(served: FlaskClient) -> None:
    assert "Date" not in served.get("/_delivery", headers={"Range": "bytes=0-9"}).headers


class UnseekableFileWrapper:
    """Like gunicorn's wsgi.file_wrapper: iterates a file in blocks and cannot seek."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        self.filelike, self.blksize = filelike, blksize
        self.close = filelike.close

    def __iter__(self) -> Iterator[bytes]:
        while block := self.filelike.read(self.blksize):
            yield block


def test_a_range_near_the_end_reads_only_from_its_start(
    served: FlaskClient, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Even under a server whose file_wrapper cannot seek, no byte before the range is read."""
    store = app_storage()
    read_from: list[int] = []
    original = store.read

    def read(key: str, start: int = 0, end: int | None = None, **kwargs: Any) -> Iterator[bytes]:
        chunks = original(key, start, end, **kwargs)
        for chunk in chunks:
            read_from.extend(range(start, start + len(chunk)))
            start += len(chunk)
            yield chunk

    monkeypatch.setattr(store, "read", read)
    response = served.get(
        "/_delivery",
        headers={"Range": f"bytes={SIZE - 100}-"},
        environ_overrides={"wsgi.file_wrapper": UnseekableFileWrapper},
    )
    assert (response.get_data(), min(read_from)) == (CONTENT[-100:], SIZE - 100)


# --- through the real routes, on local disk ------------------------------------------------------
# S3 media never reach this code: the routes redirect to a presigned URL and S3 answers Range
# and If-Range itself.


@pytest.fixture
def media_path(
    request: pytest.FixtureRequest, make_clip: Callable[..., Clip], tester: User
) -> tuple[FlaskClient, str]:
    """A client and the path of an approved clip's media: the signed-in page or a share link."""
    clip = make_clip(ClipStatus.APPROVED, tester=tester, content=CONTENT)
    if request.param == "clip page":
        browser: FlaskClient = request.getfixturevalue("signed_in")(tester)
        return browser, f"/clips/{clip.id}/media?original=1"
    _, token = sharing.create_link(clip, tester)
    db.session.commit()
    return request.getfixturevalue("client"), f"/s/{token}/media"


ROUTES = pytest.mark.parametrize("media_path", ["clip page", "share link"], indirect=True)


@ROUTES
@pytest.mark.parametrize("suffix", [SIZE, SIZE + 1, 10**30])
def test_a_route_answers_a_long_suffix_with_the_whole_clip(
    media_path: tuple[FlaskClient, str], suffix: int
) -> None:
    browser, path = media_path
    response = browser.get(path, headers={"Range": f"bytes=-{suffix}"})
    assert (response.status_code, response.headers["Content-Range"], response.get_data()) == (
        206,
        f"bytes 0-{SIZE - 1}/{SIZE}",
        CONTENT,
    )


@ROUTES
@pytest.mark.parametrize("form", ["date in the future", "date in the past", "weak", "unquoted"])
def test_a_route_gives_the_whole_clip_when_if_range_does_not_match(
    media_path: tuple[FlaskClient, str], form: str
) -> None:
    browser, path = media_path
    etag = browser.head(path).headers["ETag"]
    assert "Last-Modified" not in browser.head(path).headers
    validator = {
        "date in the future": "Tue, 21 Oct 2098 07:28:00 GMT",
        "date in the past": "Wed, 21 Oct 2015 07:28:00 GMT",
        "weak": f"W/{etag}",
        "unquoted": etag.strip('"'),
    }[form]
    response = browser.get(path, headers={"Range": "bytes=-100", "If-Range": validator})
    assert (response.status_code, response.get_data()) == (200, CONTENT)


@ROUTES
def test_a_route_honours_if_range_with_its_strong_etag(media_path: tuple[FlaskClient, str]) -> None:
    browser, path = media_path
    etag = browser.head(path).headers["ETag"]
    response = browser.get(path, headers={"Range": "bytes=-100", "If-Range": etag})
    assert (response.status_code, response.get_data()) == (206, CONTENT[-100:])
