"""Pytest fixtures for storage: fake AWS credentials, moto (in-process and server), backends.

Loaded as a plugin (``pytest_plugins = ["tests.plugins.storage"]``) so every test module can
ask for ``storage`` and get the same test run against each backend.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
import requests
from moto import mock_aws
from moto.server import ThreadedMotoServer

from approval.storage import S3Storage, Storage, storage_from_url

STORAGE_BACKENDS = ("local", "s3-inprocess", "s3-server")
S3_BACKENDS = ("s3-inprocess", "s3-server")
TEST_REGION = "us-east-1"
TEST_ORIGIN = "http://localhost:5000"

# Variables that could point boto3 at a real account, profile or endpoint from the developer's
# shell; tests must never reach beyond moto.
_AWS_ENV_TO_CLEAR = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CA_BUNDLE",
)


def make_s3_url(
    bucket: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    addressing: str | None = None,
) -> str:
    """Build an s3:// storage URL with the given query options."""
    options = {"endpoint_url": endpoint_url, "region": region, "addressing": addressing}
    query = urlencode({k: v for k, v in options.items() if v is not None})
    return f"s3://{bucket}" + (f"?{query}" if query else "")


def unique_bucket_name() -> str:
    """Return a fresh valid bucket name so tests sharing one moto server never collide."""
    return f"greenlight-test-{uuid.uuid4().hex[:16]}"


def s3_client_for(storage: S3Storage) -> Any:
    """Return a plain boto3 S3 client aimed where storage points, for inspecting state."""
    return boto3.client("s3", endpoint_url=storage.endpoint_url, region_name=storage.region)


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Give boto3 throwaway credentials and a region, and hide any real AWS configuration."""
    for name in _AWS_ENV_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", TEST_REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    # Without this a missing credential makes botocore probe the EC2 metadata address.
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def moto_inprocess(aws_credentials: None) -> Iterator[None]:
    """Run the test under moto's in-process mock: boto3 and requests to AWS hit moto."""
    with mock_aws():
        yield


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """Start one moto server on a free 127.0.0.1 port for the session; yield its endpoint URL."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_server_clean(moto_server: str, aws_credentials: None) -> str:
    """Return the moto server endpoint after wiping all of its state."""
    # The server and mock_aws share moto's global backends, so a reset also clears anything
    # an in-process test left behind.
    resp = requests.post(f"{moto_server}/moto-api/reset", timeout=10)
    resp.raise_for_status()
    return moto_server


@pytest.fixture
def moto_s3_url(moto_inprocess: None) -> str:
    """Return an s3:// URL for a fresh (not yet created) bucket under in-process moto."""
    return make_s3_url(unique_bucket_name(), region=TEST_REGION)


@pytest.fixture
def moto_server_s3_url(moto_server_clean: str) -> str:
    """Return an s3:// URL for a fresh (not yet created) bucket on the moto server."""
    return make_s3_url(unique_bucket_name(), endpoint_url=moto_server_clean, region=TEST_REGION)


@pytest.fixture(params=STORAGE_BACKENDS)
def storage_backend(request: pytest.FixtureRequest) -> str:
    """Name the backend under test; narrow it with parametrize("storage_backend", ..., indirect)."""
    return str(request.param)


@pytest.fixture
def storage_url(
    storage_backend: str,
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    aws_credentials: None,
) -> str:
    """Return a storage URL for the backend under test; nothing exists behind it yet."""
    if storage_backend == "local":
        # A directory that does not exist yet, so init() has something to create.
        return (tmp_path_factory.mktemp("storage") / "root").as_uri()
    if storage_backend == "s3-inprocess":
        return str(request.getfixturevalue("moto_s3_url"))
    if storage_backend == "s3-server":
        return str(request.getfixturevalue("moto_server_s3_url"))
    raise AssertionError(f"unknown storage backend {storage_backend!r}")


@pytest.fixture
def bare_storage(storage_url: str) -> Storage:
    """Return the backend under test before init(): no directory or bucket yet."""
    return storage_from_url(storage_url)


@pytest.fixture
def storage(bare_storage: Storage) -> Storage:
    """Return the backend under test, initialised and ready for objects."""
    bare_storage.init(cors_origins=[TEST_ORIGIN])
    return bare_storage
