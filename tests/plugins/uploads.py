"""The browser's upload path, played by a test client: ticket, bytes, completion."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from flask.testing import FlaskClient

from tests.plugins.web import csrf_token

#: The host the test app believes it serves; PUT tickets to the app itself name it.
SITE = "http://greenlight.test"


def start_direct(client: FlaskClient, name: str, size: int, **fields: Any) -> Any:
    """Ask for an upload ticket as the upload form's script does."""
    data = {"title": "A clip", "prompt": "a cat surfing", "generator": "vidgen", **fields}
    data.update(filename=name, size=str(size), csrf_token=csrf_token(client, "/clips/new"))
    return client.post("/clips/direct", data=data, headers={"Accept": "application/json"})


def send(client: FlaskClient, upload: dict[str, Any], body: bytes, name: str) -> int:
    """Play the browser: send the bytes where the ticket says, how it says."""
    if upload["method"] == "PUT":  # to the app itself (local storage): its path, on this client
        path = urlsplit(upload["url"])._replace(scheme="", netloc="").geturl()
        return client.put(path, data=body, headers=upload["headers"]).status_code
    content_type = upload["fields"]["Content-Type"]
    response = requests.post(
        upload["url"],
        data=upload["fields"],
        files={"file": (name, body, content_type)},
        timeout=30,
    )
    return response.status_code


def complete(client: FlaskClient, clip_id: int) -> Any:
    """Say the upload is done, as the script does once the bytes are sent."""
    return client.post(
        f"/clips/{clip_id}/complete",
        headers={"Accept": "application/json", "X-CSRFToken": csrf_token(client, "/clips/new")},
    )


def direct_upload(client: FlaskClient, path: Path, name: str | None = None, **fields: Any) -> Any:
    """The whole JavaScript path; returns the completion response."""
    name = name or path.name
    body = path.read_bytes()
    started = start_direct(client, name, len(body), **fields)
    assert started.status_code == 201, started.get_data(as_text=True)
    ticket = started.get_json()
    assert send(client, ticket["upload"], body, name) in (200, 201, 204)
    return complete(client, ticket["clip"])
