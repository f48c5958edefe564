"""`flask storage init`: creates what is missing and says what it did."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from approval.extensions import storage
from approval.storage import S3Storage
from tests.plugins.storage import s3_client_for


def test_storage_init_creates_the_bucket_and_its_cors_rule(
    app_factory: Callable[..., Flask], moto_server_s3_url: str
) -> None:
    app = app_factory(STORAGE_URL=moto_server_s3_url, SITE_URL="https://greenlight.example")
    result = app.test_cli_runner().invoke(args=["storage", "init"])
    assert result.exit_code == 0, result.output
    assert "CORS" in result.output
    with app.app_context():
        store = storage()
        assert isinstance(store, S3Storage)
        rules = s3_client_for(store).get_bucket_cors(Bucket=store.bucket)["CORSRules"]
    assert rules[0]["AllowedOrigins"] == ["https://greenlight.example"]
    assert "POST" in rules[0]["AllowedMethods"]


def test_storage_init_is_safe_to_run_again(app_factory: Callable[..., Flask]) -> None:
    app = app_factory()
    first = app.test_cli_runner().invoke(args=["storage", "init"])
    second = app.test_cli_runner().invoke(args=["storage", "init"])
    assert first.exit_code == second.exit_code == 0


def test_storage_init_turns_on_versioning_and_says_so(
    app_factory: Callable[..., Flask], moto_s3_url: str
) -> None:
    """In-process moto. The test app's set-up runs init once, so this run finds it on."""
    app = app_factory(STORAGE_URL=moto_s3_url)
    result = app.test_cli_runner().invoke(args=["storage", "init"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        store = storage()
        assert isinstance(store, S3Storage)
        status = s3_client_for(store).get_bucket_versioning(Bucket=store.bucket)["Status"]
    assert status == "Enabled"
    assert f"versioning already on for bucket {store.bucket!r}\n" in result.output
