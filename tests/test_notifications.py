"""Notifications: written with the decision, mailed after its commit, retried, and the digest.

Mail goes to a real SMTP server (aiosmtpd) on a free local port; the tests read what it got.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from approval import mail, outbox
from approval.extensions import db
from approval.models import Clip, ClipStatus, Notification, Role, User, Verdict
from approval.ops import claims, notifications, workflow
from tests.plugins.factories import FrozenClock
from tests.plugins.snapshot import nothing_changed

MakeUser = Callable[..., User]
MakeClip = Callable[..., Clip]
Login = Callable[..., Any]
PostForm = Callable[..., Any]

SMTP_LOGIN = ("greenlight", "p@ss:word/1")


# --- a real SMTP server --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MailServer:
    """What an aiosmtpd server received, and what the database said when each mail arrived."""

    port: int
    received: list[EmailMessage] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    #: Called in the server's thread as each mail arrives; its answer is kept.
    on_arrival: Callable[[], Any] | None = None
    seen_at_arrival: list[Any] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(
        self, server: Any, session: Any, envelope: Any
    ) -> str:  # aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        if self.on_arrival is not None:
            self.seen_at_arrival.append(self.on_arrival())
        self.received.append(message)
        return "250 OK"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        login = (data.login.decode(), data.password.decode())
        self.logins.append(login)
        return AuthResult(success=login == SMTP_LOGIN)


def start_mail_server(port: int | None = None, **smtp: Any) -> tuple[MailServer, Controller]:
    server = MailServer(port or free_port())
    controller = Controller(
        server, hostname="127.0.0.1", port=server.port, authenticator=server.authenticate, **smtp
    )
    controller.start()
    return server, controller


@pytest.fixture
def smtp_server(app: Flask) -> Iterator[MailServer]:
    """A mail server the app is configured to use."""
    server, controller = start_mail_server(auth_require_tls=False)
    app.config["SMTP_URL"] = server.url
    try:
        yield server
    finally:
        controller.stop()


@pytest.fixture
def dead_smtp(app: Flask) -> int:
    """SMTP_URL points at a port nobody listens on."""
    port = free_port()
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{port}?timeout=2"
    return port


def reject(clip: Clip, reviewer: User, **kw: Any) -> None:
    workflow.decide(
        clip,
        reviewer,
        Verdict.REJECT,
        category=kw.get("category", "quality"),
        reason=kw.get("reason", "The hands melt at the end."),
        timecode=kw.get("timecode", 1.5),
    )
    db.session.commit()


def rows(user: User | None = None) -> list[Notification]:
    db.session.expire_all()
    query = select(Notification).order_by(Notification.id)
    if user is not None:
        query = query.where(Notification.user_id == user.id)
    return list(db.session.scalars(query))


def text(response: Any) -> str:
    return str(response.get_data(as_text=True))


# --- who is told what ----------------------------------------------------------------------------


def test_a_rejection_tells_the_tester_the_reason_and_the_moment(
    reviewer: User, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer, title="Dog at sunset")
    reject(clip, reviewer, reason="The dog has five legs.", timecode=1.5)
    (note,) = rows(clip.tester)
    assert (note.kind, note.clip_id, note.subject) == (
        "clip.rejected",
        clip.id,
        "Rejected: Dog at sunset",
    )
    assert "(Quality): The dog has five legs. The reviewer points at 0:01.5." in note.body


def test_an_approval_tells_the_tester(reviewer: User, make_clip: MakeClip) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer, title="Dog at sunset")
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    db.session.commit()
    assert [(n.kind, n.subject) for n in rows(clip.tester)] == [
        ("clip.approved", "Approved: Dog at sunset")
    ]


def test_a_takedown_tells_the_tester_the_reason(make_clip: MakeClip, make_user: MakeUser) -> None:
    clip = make_clip(ClipStatus.APPROVED)
    workflow.take_down(clip, make_user(Role.ADMIN), "Rights complaint")
    db.session.commit()
    note = rows(clip.tester)[-1]
    assert (note.kind, "taken down: Rights complaint" in note.body) == ("clip.taken_down", True)


def test_the_first_of_two_required_approvals_tells_nobody(
    app: Flask, reviewer: User, make_clip: MakeClip
) -> None:
    app.config["APPROVALS_REQUIRED"] = 2
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    db.session.commit()
    assert rows() == []


def test_claims_and_releases_tell_nobody(reviewer: User, make_clip: MakeClip) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    claims.release(clip, reviewer)
    db.session.commit()
    assert rows() == []


def test_a_refused_decision_leaves_no_notification(
    client: FlaskClient,
    reviewer: User,
    make_user: MakeUser,
    make_clip: MakeClip,
    login: Login,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.REJECTED, reviewer=reviewer)
    before = len(rows())
    login(make_user(Role.REVIEWER))
    response = post_form(f"/review/{clip.id}/approve", page=f"/review/{clip.id}")
    assert (response.status_code, len(rows())) == (409, before)


def test_a_rolled_back_decision_leaves_no_notification(reviewer: User, make_clip: MakeClip) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    db.session.rollback()
    assert rows() == []


def test_notify_refuses_an_unknown_kind(reviewer: User) -> None:
    with nothing_changed(), pytest.raises(ValueError, match="unknown notification kind"):
        notifications.notify(reviewer, "clip.liked", None, "Liked", "Someone liked it")


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0, "0:00"), (1.5, "0:01.5"), (1.04, "0:01"), (61.25, "1:01.2")]
)
def test_timecodes_read_as_a_player_shows_them(seconds: float, shown: str) -> None:
    assert notifications.timecode(seconds) == shown


# --- mail ----------------------------------------------------------------------------------------


def test_a_decision_mails_the_tester_after_the_commit(
    app: Flask, smtp_server: MailServer, reviewer: User, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer, title="Dog at sunset")
    engine = sa.create_engine(app.config["SQLALCHEMY_DATABASE_URI"])

    def status_seen_by_another_connection() -> str:
        with engine.connect() as conn:
            return str(
                conn.scalar(sa.text("SELECT status FROM clips WHERE id = :id"), {"id": clip.id})
            )

    smtp_server.on_arrival = status_seen_by_another_connection
    reject(clip, reviewer)
    engine.dispose()
    (message,) = smtp_server.received
    assert (message["To"], message["Subject"], smtp_server.seen_at_arrival) == (
        clip.tester.email,
        "[Greenlight] Rejected: Dog at sunset",
        ["rejected"],  # the decision was committed, visible to others, when the mail arrived
    )


def test_the_mail_links_to_the_moment_in_the_clip(
    smtp_server: MailServer, reviewer: User, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer, timecode=1.5)
    body = smtp_server.received[0].get_content()
    assert f"http://greenlight.test/clips/{clip.id}#t=1.5" in body
    assert "http://greenlight.test/inbox/" in body


def test_a_mailed_notification_is_marked_sent(
    smtp_server: MailServer, reviewer: User, make_clip: MakeClip, clock: FrozenClock
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer)
    (note,) = rows(clip.tester)
    assert (note.emailed_at, note.email_attempts, note.last_email_error) == (clock.now, 1, None)


def test_nothing_is_mailed_for_a_rolled_back_decision(
    smtp_server: MailServer, reviewer: User, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    workflow.decide(clip, reviewer, Verdict.APPROVE)
    db.session.rollback()
    db.session.commit()  # a later, empty commit must not send what was rolled back
    assert smtp_server.received == []


def test_without_smtp_url_nothing_is_mailed_and_the_inbox_says_so(
    client: FlaskClient, reviewer: User, make_clip: MakeClip, login: Login
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer)
    (note,) = rows(clip.tester)
    login(clip.tester)
    page = text(client.get("/inbox/"))
    assert (note.email_attempts, "Mail is not set up on this server" in page) == (0, True)


def test_a_dead_mail_server_does_not_fail_the_decision(
    client: FlaskClient,
    dead_smtp: int,
    make_user: MakeUser,
    make_clip: MakeClip,
    login: Login,
    post_form: PostForm,
    caplog: pytest.LogCaptureFixture,
) -> None:
    reviewer = make_user(Role.REVIEWER)
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    login(reviewer)
    with caplog.at_level(logging.WARNING, logger="approval.outbox"):
        response = post_form(
            f"/review/{clip.id}/reject",
            {"category": "quality", "reason": "Blurry.", "timecode": "1"},
            page=f"/review/{clip.id}",
        )
    (note,) = rows(clip.tester)
    assert (response.status_code, db.session.get(Clip, clip.id).status) == (  # type: ignore[union-attr]
        302,
        ClipStatus.REJECTED,
    )
    assert (note.emailed_at, note.email_attempts) == (None, 1)
    assert f"cannot reach smtp://127.0.0.1:{dead_smtp}" in (note.last_email_error or "")
    assert any("not sent" in record.getMessage() for record in caplog.records)


def test_send_mail_retries_once_the_server_is_back(
    app: Flask, dead_smtp: int, reviewer: User, make_clip: MakeClip, clock: FrozenClock
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer, title="Dog at sunset")
    reject(clip, reviewer)
    server, controller = start_mail_server(port=dead_smtp, auth_require_tls=False)
    try:
        clock.advance(minutes=5)
        result = app.test_cli_runner().invoke(args=["inbox", "send-mail"])
    finally:
        controller.stop()
    (note,) = rows(clip.tester)
    assert (result.exit_code, result.output.strip()) == (0, "1 sent, 0 failed")
    assert [m["Subject"] for m in server.received] == ["[Greenlight] Rejected: Dog at sunset"]
    assert (note.emailed_at, note.email_attempts, note.last_email_error) == (clock.now, 2, None)


def test_send_mail_reports_a_server_still_down(
    app: Flask, dead_smtp: int, reviewer: User, make_clip: MakeClip, clock: FrozenClock
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer)
    clock.advance(minutes=5)
    result = app.test_cli_runner().invoke(args=["inbox", "send-mail"])
    (note,) = rows(clip.tester)
    assert (result.exit_code, "0 sent, 1 failed" in result.output) == (1, True)
    assert (note.emailed_at, note.email_attempts) == (None, 2)


def test_send_mail_leaves_fresh_mail_to_the_request_that_wrote_it(
    app: Flask, dead_smtp: int, reviewer: User, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer)
    result = app.test_cli_runner().invoke(args=["inbox", "send-mail"])
    assert (result.output.strip(), rows(clip.tester)[0].email_attempts) == ("0 sent, 0 failed", 1)


def test_send_mail_gives_up_on_old_mail(
    app: Flask, dead_smtp: int, reviewer: User, make_clip: MakeClip, clock: FrozenClock
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer)
    clock.advance(days=4)
    result = app.test_cli_runner().invoke(args=["inbox", "send-mail"])
    assert (result.output.strip(), rows(clip.tester)[0].email_attempts) == ("0 sent, 0 failed", 1)


def test_send_mail_without_smtp_url_says_so(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["inbox", "send-mail"])
    assert (result.exit_code, "GREENLIGHT_SMTP_URL is not set" in result.output) == (1, True)


def test_two_senders_never_mail_one_notification_twice(
    app: Flask, smtp_server: MailServer, reviewer: User, make_clip: MakeClip
) -> None:
    app.config["SMTP_URL"] = ""
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer)
    (note,) = rows(clip.tester)
    app.config["SMTP_URL"] = smtp_server.url
    first = outbox.send_pending([note.id])
    second = outbox.send_pending([note.id])
    assert ((first.sent, second.sent), len(smtp_server.received)) == ((1, 0), 1)


def test_mail_signs_in_with_the_user_and_password_in_the_url(
    app: Flask, smtp_server: MailServer, reviewer: User, make_clip: MakeClip
) -> None:
    app.config["SMTP_URL"] = f"smtp://greenlight:p%40ss%3Aword%2F1@127.0.0.1:{smtp_server.port}"
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer)
    assert (smtp_server.logins, len(smtp_server.received)) == ([SMTP_LOGIN], 1)


def test_a_wrong_smtp_password_keeps_the_mail_pending(
    app: Flask, smtp_server: MailServer, reviewer: User, make_clip: MakeClip
) -> None:
    app.config["SMTP_URL"] = f"smtp://greenlight:wrong@127.0.0.1:{smtp_server.port}?timeout=2"
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer)
    (note,) = rows(clip.tester)
    assert (note.emailed_at, "refused the session" in (note.last_email_error or "")) == (
        None,
        True,
    )


def test_mail_is_not_sent_to_deactivated_people(
    smtp_server: MailServer, reviewer: User, make_clip: MakeClip
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    clip.tester.active = False
    db.session.commit()
    reject(clip, reviewer)
    assert smtp_server.received == []


# --- TLS -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _server_context(tls_files: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*tls_files)
    return context


def _message(to: str = "tess@example.com") -> EmailMessage:
    return mail.build_message(sender="greenlight@example.com", to=to, subject="Hi", body="Hello")


def test_smtps_sends_over_implicit_tls(tls_files: tuple[Path, Path]) -> None:
    # aiosmtpd does not count implicit TLS as TLS for auth_require_tls; the link is TLS anyway.
    server, controller = start_mail_server(
        ssl_context=_server_context(tls_files), auth_require_tls=False
    )
    try:
        url = f"smtps://greenlight:p%40ss%3Aword%2F1@127.0.0.1:{server.port}?cafile={tls_files[0]}"
        send_directly(url)
    finally:
        controller.stop()
    assert ([m["Subject"] for m in server.received], server.logins) == (["Hi"], [SMTP_LOGIN])


def send_directly(url: str) -> None:
    """One message over one connection, as the outbox sends each."""
    with mail.connect(mail.parse_smtp_url(url)) as client:
        mail.send_one(client, _message())


def test_starttls_upgrades_before_signing_in(tls_files: tuple[Path, Path]) -> None:
    server, controller = start_mail_server(
        tls_context=_server_context(tls_files), require_starttls=True, auth_require_tls=True
    )
    try:
        url = (
            f"smtp://greenlight:p%40ss%3Aword%2F1@127.0.0.1:{server.port}"
            f"?starttls=1&cafile={tls_files[0]}"
        )
        send_directly(url)
    finally:
        controller.stop()
    assert ([m["Subject"] for m in server.received], server.logins) == (["Hi"], [SMTP_LOGIN])


def test_an_untrusted_certificate_is_refused(tls_files: tuple[Path, Path]) -> None:
    server, controller = start_mail_server(ssl_context=_server_context(tls_files))
    try:
        with pytest.raises(mail.MailError, match="cannot reach"):
            send_directly(f"smtps://127.0.0.1:{server.port}")
    finally:
        controller.stop()
    assert server.received == []


# --- the SMTP URL --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", ("mail.example.com", 25, False, False, None, None)),
        ("smtps://mail.example.com", ("mail.example.com", 465, True, False, None, None)),
        (
            "smtp://me%40example.com:s%3Acret@mail.example.com:587?starttls=1",
            ("mail.example.com", 587, False, True, "me@example.com", "s:cret"),
        ),
        ("smtp://[::1]:2525", ("::1", 2525, False, False, None, None)),
    ],
)
def test_smtp_urls_are_read(url: str, expected: tuple[Any, ...]) -> None:
    s = mail.parse_smtp_url(url)
    assert (s.host, s.port, s.implicit_tls, s.starttls, s.username, s.password) == expected


def test_the_sender_and_timeout_come_from_the_url() -> None:
    s = mail.parse_smtp_url(
        "smtp://mail.example.com?from=Greenlight%20%3Cgl%40example.com%3E&timeout=3"
    )
    assert (s.sender, s.timeout) == ("Greenlight <gl@example.com>", 3.0)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.com", "use smtp://"),
        ("smtp://", "host name is missing"),
        ("smtp://mail.example.com:99999", "port"),
        ("smtps://mail.example.com?starttls=1", "TLS already"),
        ("smtp://mail.example.com?starttls=maybe", "starttls must be 1 or 0"),
        ("smtp://mail.example.com?tls=1", "unknown option 'tls'"),
        ("smtp://mail.example.com?timeout=0", "timeout must be more than 0"),
        ("smtp://mail.example.com?from=nobody", "not an email address"),
    ],
)
def test_bad_smtp_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mail.parse_smtp_url(url)


def test_the_password_never_shows_in_the_settings() -> None:
    settings = mail.parse_smtp_url("smtp://me:hunter2@mail.example.com")
    assert "hunter2" not in repr(settings) + settings.describe()


def test_a_bad_smtp_url_stops_start_up_naming_the_setting(
    app_factory: Callable[..., Flask],
) -> None:
    with pytest.raises(SystemExit, match="GREENLIGHT_SMTP_URL: use smtp://"):
        app_factory(SMTP_URL="mailto:admin@example.com")


# --- the inbox -----------------------------------------------------------------------------------


@pytest.fixture
def tester_with_news(
    client: FlaskClient, reviewer: User, make_clip: MakeClip, login: Login
) -> User:
    """A signed-in tester with two unread notifications: a rejection, then an approval."""
    rejected = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer, title="First try")
    reject(rejected, reviewer)
    approved = make_clip(
        ClipStatus.IN_REVIEW, reviewer=reviewer, tester=rejected.tester, title="Second try"
    )
    workflow.decide(approved, reviewer, Verdict.APPROVE)
    db.session.commit()
    login(rejected.tester)
    return rejected.tester


def test_the_inbox_lists_newest_first(client: FlaskClient, tester_with_news: User) -> None:
    page = text(client.get("/inbox/"))
    assert page.index("Approved: Second try") < page.index("Rejected: First try")


def test_the_header_shows_the_unread_count(client: FlaskClient, tester_with_news: User) -> None:
    page = text(client.get("/clips/"))
    assert '<span class="count" id="unread-count">2<span class="visually-hidden"> unread' in page


def test_the_rejection_links_to_its_moment(client: FlaskClient, tester_with_news: User) -> None:
    clip_id = rows(tester_with_news)[0].clip_id
    assert f'href="/clips/{clip_id}#t=1.5"' in text(client.get("/inbox/"))


def test_marking_one_read_lowers_the_count(
    client: FlaskClient, tester_with_news: User, post_form: PostForm
) -> None:
    first = rows(tester_with_news)[0]
    post_form(f"/inbox/{first.id}/read", page="/inbox/")
    assert [n.read_at is not None for n in rows(tester_with_news)] == [True, False]
    assert notifications.unread_count(tester_with_news) == 1


def test_marking_all_read(client: FlaskClient, tester_with_news: User, post_form: PostForm) -> None:
    response = post_form("/inbox/read-all", page="/inbox/", follow_redirects=True)
    assert (
        "2 notifications marked as read." in text(response),
        "unread-count" in text(response),
    ) == (
        True,
        False,
    )


def test_one_cannot_mark_anothers_notification_read(
    client: FlaskClient,
    reviewer: User,
    make_user: MakeUser,
    make_clip: MakeClip,
    login: Login,
    post_form: PostForm,
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer)
    login(make_user(Role.TESTER))
    note = rows(clip.tester)[0]
    response = post_form(f"/inbox/{note.id}/read", page="/inbox/")
    # Like anyone else's thing, it does not exist for this caller.
    assert response.status_code == 404
    assert f"You have no notification {note.id}." in response.get_data(as_text=True)
    assert rows(clip.tester)[0].read_at is None


def test_marking_an_already_read_notification_again_is_fine(
    client: FlaskClient, tester_with_news: User, post_form: PostForm
) -> None:
    first = rows(tester_with_news)[0]
    post_form(f"/inbox/{first.id}/read", page="/inbox/")
    assert post_form(f"/inbox/{first.id}/read", page="/inbox/").status_code == 302
    assert notifications.unread_count(tester_with_news) == 1


def test_the_inbox_needs_signing_in(client: FlaskClient) -> None:
    assert client.get("/inbox/").headers["Location"].startswith("/login")


def test_an_empty_inbox_says_what_comes_here(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    login(make_user(Role.TESTER))
    assert "You hear here when a clip of yours is approved" in text(client.get("/inbox/"))


# --- the reviewers' digest -----------------------------------------------------------------------


@pytest.fixture
def digest_reader(make_user: MakeUser) -> User:
    user = make_user(Role.REVIEWER)
    user.wants_queue_digest = True
    db.session.commit()
    return user


def test_the_digest_tells_the_count_and_the_oldest_age(
    digest_reader: User, make_clip: MakeClip, clock: FrozenClock
) -> None:
    make_clip(ClipStatus.WAITING)
    clock.advance(hours=1)
    make_clip(ClipStatus.WAITING)
    clock.advance(hours=2)
    (note,) = notifications.queue_digest()
    db.session.commit()
    assert (note.user_id, note.subject) == (digest_reader.id, "Review queue: 2 waiting")
    assert "2 clips are waiting for review. The oldest has waited 3 hours" in note.body


def test_the_digest_goes_out_once_a_day(
    app: Flask, digest_reader: User, make_clip: MakeClip, clock: FrozenClock
) -> None:
    make_clip(ClipStatus.WAITING)
    runner = app.test_cli_runner()
    outputs = [runner.invoke(args=["inbox", "digest"]).output.strip()]
    clock.advance(hours=1)
    outputs.append(runner.invoke(args=["inbox", "digest"]).output.strip())
    clock.advance(hours=23)
    outputs.append(runner.invoke(args=["inbox", "digest"]).output.strip())
    assert [o.split(" (")[0] for o in outputs] == [
        "1 digest written",
        "no digest written",
        "1 digest written",
    ]


def test_no_digest_for_an_empty_queue(digest_reader: User) -> None:
    assert notifications.queue_digest() == []


def test_no_digest_for_reviewers_who_did_not_ask(make_user: MakeUser, make_clip: MakeClip) -> None:
    make_user(Role.REVIEWER)
    make_clip(ClipStatus.WAITING)
    assert notifications.queue_digest() == []


def test_the_digest_is_mailed(
    app: Flask, smtp_server: MailServer, digest_reader: User, make_clip: MakeClip
) -> None:
    make_clip(ClipStatus.WAITING)
    app.test_cli_runner().invoke(args=["inbox", "digest"])
    (message,) = smtp_server.received
    assert (message["To"], message["Subject"]) == (
        digest_reader.email,
        "[Greenlight] Review queue: 1 waiting",
    )


def test_a_reviewer_opts_in_on_the_inbox_page(
    client: FlaskClient, make_user: MakeUser, login: Login, post_form: PostForm
) -> None:
    user = make_user(Role.REVIEWER)
    login(user)
    post_form("/inbox/preferences", {"wants_queue_digest": "y"}, page="/inbox/")
    db.session.refresh(user)
    assert user.wants_queue_digest is True


def test_a_reviewer_opts_out(
    client: FlaskClient, digest_reader: User, login: Login, post_form: PostForm
) -> None:
    login(digest_reader)
    post_form("/inbox/preferences", {}, page="/inbox/")
    db.session.refresh(digest_reader)
    assert digest_reader.wants_queue_digest is False


def test_a_tester_cannot_opt_in(
    client: FlaskClient, make_user: MakeUser, login: Login, post_form: PostForm
) -> None:
    user = make_user(Role.TESTER)
    login(user)
    response = post_form(
        "/inbox/preferences", {"wants_queue_digest": "y"}, page="/inbox/", follow_redirects=True
    )
    db.session.refresh(user)
    assert (user.wants_queue_digest, "Only reviewers" in text(response)) == (False, True)


def test_the_opt_in_is_offered_to_reviewers_only(
    client: FlaskClient, make_user: MakeUser, login: Login
) -> None:
    login(make_user(Role.TESTER))
    assert "Send me a daily summary" not in text(client.get("/inbox/"))


def test_notifications_are_counted_per_person(
    reviewer: User, make_clip: MakeClip, make_user: MakeUser
) -> None:
    clip = make_clip(ClipStatus.IN_REVIEW, reviewer=reviewer)
    reject(clip, reviewer)
    other = make_user(Role.TESTER)
    count = db.session.scalar(select(func.count()).select_from(Notification))
    assert (notifications.unread_count(clip.tester), notifications.unread_count(other), count) == (
        1,
        0,
        1,
    )
