"""Alerts out for real: events from the services, the dispatcher, a webhook receiver and an
SMTP server started here on 127.0.0.1, retries proven in the delivery log."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.alerts.dispatcher import DispatchSettings, attempt, run, run_once
from coldchain.api import responses as out
from coldchain.config import Settings
from coldchain.demo import free_port
from coldchain.domain.alerts import SEVERITIES
from coldchain.services import alarms, alerts
from coldchain.store.models import AlertDelivery, AuditEvent, utcnow
from tests.api.test_custody_api import PATIENT, create, deliver, receive, store
from tests.conftest import World
from tests.support.processes import ColdchainProcess

SECRET = "test-webhook-secret-0123456789"
OPENED = ["excursion_opened"]


@dataclass
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A webhook receiver: a real HTTP server on a loopback port, answering from a script.

    Each script step is a status to answer, or "hang" (answer nothing for longer than the
    dispatcher waits). Once the script is used up it answers 200; the path "/gone" is 410.
    """

    port: int
    script: list[int | str] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    Received(self.path, dict(self.headers.items()), body, time.monotonic())
                )
                step: int | str = 410 if self.path == "/gone" else 200
                if self.path != "/gone" and receiver.script:
                    step = receiver.script.pop(0)
                if step == "hang":
                    time.sleep(1.5)
                    step = 200
                try:
                    self.send_response(int(step))
                    self.end_headers()
                    self.wfile.write(b"ok" if step == 200 else b"nope")
                except OSError:
                    pass  # the dispatcher stopped waiting

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    made = Receiver(free_port())
    yield made
    made.stop()


def config(settings: Settings, **changes: Any) -> DispatchSettings:
    """The dispatcher's settings, made fast: short polls, timeouts and backoff."""
    values = dict(settings.values)
    values.update(
        {
            "alerts_poll_s": 0.05,
            "alerts_backoff_base_s": 0.2,
            "alerts_backoff_max_s": 1.0,
            "alerts_max_attempts": 6,
            "alerts_webhook_timeout_s": 0.5,
            "alerts_smtp_timeout_s": 5,
        }
    )
    values.update(changes)
    return DispatchSettings.from_values(values)


@pytest.fixture
def dispatcher(
    sessions: sessionmaker[Session], settings: Settings
) -> Iterator[Callable[..., DispatchSettings]]:
    """Start the dispatcher loop in a thread (real database); stopped after the test."""
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(**changes: Any) -> DispatchSettings:
        made = config(settings, **changes)
        thread = threading.Thread(target=run, args=(sessions, made, stop), daemon=True)
        thread.start()
        threads.append(thread)
        return made

    yield start
    stop.set()
    for thread in threads:
        thread.join(timeout=10)


def wait_for(check: Callable[[], Any], timeout_s: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not true after {timeout_s}s: {check}")


def log(sessions: sessionmaker[Session], **filters: Any) -> list[dict[str, Any]]:
    return list(
        alerts.list_attempts(sessions=sessions, filters=alerts.AttemptFilter(**filters), limit=None)
    )


def subscribe(sessions: sessionmaker[Session], channel: str, target: str, **kw: Any) -> int:
    view, _secret = alerts.add_subscription(
        sessions=sessions,
        channel=channel,
        target=target,
        site_id=kw.pop("site", None),
        min_severity=kw.pop("min_severity", "info"),
        **kw,
    )
    return int(view["id"])


def audit_event(sessions: sessionmaker[Session], action: str) -> AuditEvent:
    with sessions() as session:
        return session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.seq.desc())
        ).first()  # type: ignore[return-value]


def test_a_webhook_gets_a_signed_excursion_alert_after_refusal_500_and_timeout_retries(
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
    receiver: Receiver,
    dispatcher: Callable[..., DispatchSettings],
) -> None:
    # Only this type: the other helpers' alarms (rate of change...) fire on these readings.
    sub = subscribe(
        sessions, "webhook", receiver.url(), site="TC-1", secret=SECRET, alert_types=OPENED
    )
    other_site = subscribe(sessions, "webhook", receiver.url(), site="TC-2", secret=SECRET)
    shipment = create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    store(sessions, settings, "L-1", [-190, -140, -140, -190])
    opened = audit_event(sessions, "excursion.opened")
    dispatcher()

    # Nothing listens yet: the first attempt is refused.
    [first] = wait_for(lambda: log(sessions, subscription_id=sub))
    assert first["outcome"] == "retry" and "refused" in first["detail"].lower()
    receiver.script = [500, "hang"]
    receiver.start()
    wait_for(lambda: any(a["outcome"] == "delivered" for a in log(sessions)))

    attempts = log(sessions, subscription_id=sub)
    assert [(a["attempt"], a["outcome"]) for a in attempts] == [
        (1, "retry"),
        (2, "retry"),
        (3, "retry"),
        (4, "delivered"),
    ]
    assert attempts[1]["detail"].startswith("HTTP 500")
    assert "timed out" in attempts[2]["detail"].lower()
    assert attempts[3]["detail"].startswith("HTTP 200")
    assert (
        all(a["next_attempt_at"] for a in attempts[:3]) and attempts[3]["next_attempt_at"] is None
    )
    assert {a["audit_seq"] for a in attempts} == {opened.seq}
    assert {a["delivery_status"] for a in attempts} == {"delivered"}
    assert log(sessions, subscription_id=other_site) == []

    # Three requests reached the receiver, each signed over the same body and delivery id.
    assert len(receiver.requests) == 3
    bodies = {r.body for r in receiver.requests}
    assert len(bodies) == 1
    for request in receiver.requests:
        assert request.headers["X-Coldchain-Delivery"] == f"{opened.seq}-{sub}"
        stamp, _, mac = request.headers["X-Coldchain-Signature"].partition(",v1=")
        timestamp = int(stamp.removeprefix("t="))
        assert abs(time.time() - timestamp) < 60
        expected = hmac.new(
            SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256
        ).hexdigest()
        assert hmac.compare_digest(mac, expected)
    body = json.loads(bodies.pop())
    new_values = json.loads(opened.new_values or "{}")
    assert body["type"] == "excursion_opened" and body["title"]
    assert body["severity"] == new_values.get("severity", "critical") in SEVERITIES
    assert body["sites"] == ["MFG-1", "TC-1"]
    assert (body["shipment_id"], body["coi"]) == (shipment["id"], shipment["coi"])
    assert body["details"]["kind"] == "HIGH" and body["details"]["excursion_id"]
    assert body["audit"]["seq"] == opened.seq and body["audit"]["hash"] == opened.hash
    assert body["id"] == f"{opened.seq}-{sub}"
    # Backoff: each retry waited at least its doubling delay.
    gaps = [b.at - a.at for a, b in zip(receiver.requests, receiver.requests[1:], strict=False)]
    assert gaps[0] >= 0.4 * 0.9 and gaps[1] >= 0.8 * 0.9


@dataclass
class Mailbox:
    """What the SMTP server received, and the replies it gives first."""

    replies: list[str] = field(default_factory=list)
    messages: list[tuple[str, list[str], bytes]] = field(default_factory=list)

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802
        if self.replies:
            return self.replies.pop(0)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


def test_an_identity_mismatch_at_receipt_is_mailed_after_a_temporary_smtp_refusal(
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    smtp: tuple[Mailbox, int],
    dispatcher: Callable[..., DispatchSettings],
) -> None:
    mailbox, port = smtp
    mailbox.replies = ["451 4.3.0 Try again later"]
    sub = subscribe(sessions, "email", "qa@tc-1.example.org", site="TC-1", min_severity="critical")
    subscribe(
        sessions, "email", "loss@example.org", alert_types=["signal_loss"], min_severity="info"
    )
    shipment = deliver(client, world, create(client, world))
    refused = receive(client, world, shipment, patient={**PATIENT, "mrn": "99999"})
    assert refused.status_code == 409
    event = audit_event(sessions, "receipt.refused")
    dispatcher(alerts_smtp_port=port, alerts_smtp_from="coldchain@test.example.org")

    wait_for(lambda: mailbox.messages)
    [(sender, recipients, raw)] = mailbox.messages
    assert (sender, recipients) == ("coldchain@test.example.org", ["qa@tc-1.example.org"])
    message = message_from_bytes(raw, policy=policy.default)
    assert message["To"] == "qa@tc-1.example.org"
    assert message["Subject"] == (
        f"[coldchain] CRITICAL: Identity mismatch at receipt, shipment {shipment['id']} "
        f"(COI {shipment['coi']})"
    )
    assert message["X-Coldchain-Delivery"] == f"{event.seq}-{sub}"
    text = message.get_content()  # type: ignore[attr-defined]
    assert f"COI: {shipment['coi']}" in text and "code: patient-mismatch" in text
    assert f"Audit event {event.seq} (receipt.refused), hash {event.hash}" in text
    attempts = wait_for(
        lambda: [a for a in log(sessions) if a["outcome"] == "delivered"] and log(sessions)
    )
    assert [(a["subscription_id"], a["attempt"], a["outcome"]) for a in attempts] == [
        (sub, 1, "retry"),
        (sub, 2, "delivered"),
    ]
    assert attempts[0]["detail"].startswith("SMTP DATA 451")
    assert attempts[1]["detail"].startswith("SMTP DATA 250")
    assert attempts[1]["alert_type"] == "identity_mismatch"


def test_the_dispatcher_process_sends_predicted_alarms_by_severity_once_across_restarts(
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    receiver: Receiver,
    database_url: str,
    tmp_path: Path,
) -> None:
    receiver.start()
    critical = subscribe(
        sessions, "webhook", receiver.url(), min_severity="critical", secret=SECRET
    )
    gone = subscribe(sessions, "webhook", receiver.url("/gone"), secret=SECRET)
    shipment = create(client, world)
    with sessions.begin() as session:
        for severity, at_us in (("warning", 1), ("critical", 2)):
            alarms.raise_alarm(
                session,
                shipment_id=shipment["id"],
                kind="PREDICTED",
                severity=severity,
                at_us=1_800_000_000_000_000 + at_us,
                detail={"crossing_at": "2027-01-15T08:00:00Z"},
            )
    env = {"COLDCHAIN_DATABASE_URL": database_url, "COLDCHAIN_ALERTS_BACKOFF_BASE_S": "60"}
    for run_number in range(2):
        process = ColdchainProcess(["alerts", "run", "--once"], env, tmp_path / "alerts.log")
        assert process.start().wait(timeout_s=60) == 0, process.log()
        assert len(receiver.requests) == 3, (run_number, process.log())

    # The critical subscription got the critical prediction only; the other got both, and
    # its receiver's 410 failed each for good at the first attempt.
    to_critical = [r for r in receiver.requests if r.path == "/hook"]
    [body] = [json.loads(r.body) for r in to_critical]
    assert (body["type"], body["severity"]) == ("predicted_excursion", "critical")
    assert body["details"]["detail"] == {"crossing_at": "2027-01-15T08:00:00Z"}
    assert [(a["attempt"], a["outcome"]) for a in log(sessions, subscription_id=critical)] == [
        (1, "delivered")
    ]
    failed = log(sessions, subscription_id=gone)
    assert [(a["outcome"], a["delivery_status"]) for a in failed] == [("failed", "failed")] * 2
    assert all(a["detail"].startswith("HTTP 410") for a in failed)


def test_a_claimed_delivery_never_recorded_is_claimed_again_after_its_lease(
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
    receiver: Receiver,
) -> None:
    receiver.start()
    sub = subscribe(sessions, "webhook", receiver.url(), secret=SECRET, alert_types=OPENED)
    create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    store(sessions, settings, "L-1", [-190, -140, -190])
    made = config(settings)
    assert alerts.scan(sessions=sessions, batch_size=100).deliveries == 1
    assert alerts.scan(sessions=sessions, batch_size=100).deliveries == 0
    lost = alerts.claim_due(sessions=sessions, now=utcnow(), lease_s=0.3)
    assert lost is not None and lost.attempt == 1
    assert alerts.claim_due(sessions=sessions, now=utcnow(), lease_s=0.3) is None
    time.sleep(0.4)  # the dispatcher that claimed it "died" before sending
    again = alerts.claim_due(sessions=sessions, now=utcnow(), lease_s=0.3)
    assert again is not None and (again.delivery_id, again.attempt) == (lost.delivery_id, 1)
    assert attempt(sessions, made, again) == "delivered"
    assert run_once(sessions, made).attempts == 0
    assert [r.headers["X-Coldchain-Delivery"] for r in receiver.requests] == [again.key]
    assert again.key.endswith(f"-{sub}")


def test_removing_a_subscription_cancels_its_pending_alerts_and_is_audited(
    client: FlaskClient,
    world: World,
    sessions: sessionmaker[Session],
    settings: Settings,
) -> None:
    port = free_port()  # nothing listens: every attempt would be retried
    sub = subscribe(
        sessions, "webhook", f"http://127.0.0.1:{port}/x", secret=SECRET, alert_types=OPENED
    )
    create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    store(sessions, settings, "L-1", [-190, -140, -190])
    assert run_once(sessions, config(settings)).attempts == 1
    alerts.remove_subscription(sessions=sessions, subscription_id=sub, reason="receiver retired")
    with sessions() as session:
        [delivery] = session.scalars(select(AlertDelivery)).all()
        assert (delivery.status, delivery.next_attempt_at) == ("cancelled", None)
    removed = audit_event(sessions, "alert_subscription.removed")
    assert removed.reason == "receiver retired" and removed.actor == "system:cli"
    created = audit_event(sessions, "alert_subscription.created")
    assert "secret" not in (created.new_values or "")
    assert json.loads(created.new_values or "{}")["target"] == f"http://127.0.0.1:{port}/x"


def test_the_delivery_log_api_is_for_admin_qa_and_auditors_and_subscriptions_for_admin(
    client: FlaskClient, world: World, sessions: sessionmaker[Session], settings: Settings
) -> None:
    made = client.post(
        "/api/v1/alerts/subscriptions",
        json={
            "channel": "webhook",
            "target": "http://127.0.0.1:9/h",
            "site": "TC-1",
            "types": OPENED,
        },
        headers=world.auth("admin"),
    )
    assert made.status_code == 201, made.get_json()
    body = made.get_json()
    assert body["secret"] and len(body["secret"]) >= 32 and body["min_severity"] == "warning"
    assert audit_event(sessions, "alert_subscription.created").actor == "admin"
    create(client, world, monitoring_from="2020-01-01T00:00:00Z")
    store(sessions, settings, "L-1", [-190, -140, -190])
    run_once(sessions, config(settings))
    for user in ("admin", "qa", "auditor"):
        response = client.get("/api/v1/alerts/deliveries", headers=world.auth(user))
        assert response.status_code == 200
        [row] = response.get_json()
        out.AlertAttempt.model_validate(row)
        assert (row["subscription_id"], row["attempt"], row["outcome"]) == (body["id"], 1, "retry")
    csv_text = client.get(
        "/api/v1/alerts/deliveries?format=csv&outcome=retry", headers=world.auth("auditor")
    ).get_data(as_text=True)
    assert csv_text.startswith("id,delivery_id,subscription_id") and csv_text.count("\n") == 2
    for user in ("coord", "courier", "clinic1"):
        assert client.get("/api/v1/alerts/deliveries", headers=world.auth(user)).status_code == 403
    assert client.get("/api/v1/alerts/subscriptions", headers=world.auth("qa")).status_code == 403
    listed = client.get("/api/v1/alerts/subscriptions", headers=world.auth("admin")).get_json()
    assert [s["id"] for s in listed] == [body["id"]] and "secret" not in listed[0]
    out.AlertSubscription.model_validate(listed[0])
    out.AlertSubscriptionCreated.model_validate(body)
    gone = client.delete(f"/api/v1/alerts/subscriptions/{body['id']}", headers=world.auth("admin"))
    assert gone.status_code == 200 and gone.get_json()["removed_at"]
    again = client.delete(f"/api/v1/alerts/subscriptions/{body['id']}", headers=world.auth("admin"))
    assert again.status_code == 404
    bad = client.post(
        "/api/v1/alerts/subscriptions",
        json={"channel": "email", "target": "not-an-address"},
        headers=world.auth("admin"),
    )
    assert (bad.status_code, bad.get_json()["error"]["field"]) == (400, "address")
