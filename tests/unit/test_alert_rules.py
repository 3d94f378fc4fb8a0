"""Alerts out, the pure rules: events to alerts, matching, signatures, retries, targets."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from coldchain.domain import alerts as rules
from coldchain.domain.errors import ValidationError


def facts(action: str, new: dict[str, object] | None, **changes: object) -> rules.AuditFacts:
    fields: dict[str, object] = {
        "seq": 42,
        "hash": "ab" * 32,
        "at": "2026-01-01T00:00:00Z",
        "actor": "system:ingest",
        "action": action,
        "entity": "excursion",
        "entity_id": "7",
        "new_values": new,
        "reason": None,
    }
    fields.update(changes)
    return rules.AuditFacts(**fields)  # type: ignore[arg-type]


def alert(
    alert_type: str = rules.EXCURSION_OPENED, severity: str = "critical", seq: int = 42
) -> rules.Alert:
    return rules.Alert(
        source=facts("excursion.opened", {}, seq=seq),
        alert_type=alert_type,
        severity=severity,
        shipment_id=3,
        coi="G123426000001X",
        sites=("MFG-1", "TC-1"),
        details={"kind": "HIGH"},
    )


def subscription(**changes: object) -> rules.Subscription:
    fields: dict[str, object] = {
        "id": 5,
        "channel": "webhook",
        "target": "http://127.0.0.1/hook",
        "site_id": None,
        "min_severity": "info",
    }
    fields.update(changes)
    return rules.Subscription(**fields)  # type: ignore[arg-type]


def test_a_high_excursion_opening_is_an_excursion_opened_alert_critical_by_default() -> None:
    source = rules.classify(facts("excursion.opened", {"kind": "HIGH", "shipment_id": 3}))
    assert source is not None
    assert (source.alert_type, source.severity, source.shipment_id) == (
        "excursion_opened",
        "critical",
        3,
    )
    assert source.details["excursion_id"] == 7


def test_a_signal_loss_opening_is_a_signal_loss_alert_and_the_events_severity_wins() -> None:
    new = {"kind": "SIGNAL_LOSS", "shipment_id": 3, "severity": "info"}
    source = rules.classify(facts("excursion.opened", new))
    assert source is not None and (source.alert_type, source.severity) == ("signal_loss", "info")


def test_a_predicted_alarm_is_a_predicted_excursion_alert_with_the_alarms_severity() -> None:
    new = {"kind": "PREDICTED", "shipment_id": 3, "severity": "critical"}
    source = rules.classify(facts("alarm.raised", new, entity="alarm"))
    assert source is not None
    assert (source.alert_type, source.severity) == ("predicted_excursion", "critical")
    assert source.details["alarm_id"] == 7


def test_budget_and_rate_alarms_are_alerts_and_an_unknown_alarm_kind_is_not() -> None:
    for kind, expected in (("BUDGET_SPENT", "budget_spent"), ("RATE_OF_CHANGE", "rate_of_change")):
        source = rules.classify(facts("alarm.raised", {"kind": kind, "shipment_id": 3}))
        assert source is not None and source.alert_type == expected
    assert rules.classify(facts("alarm.raised", {"kind": "SOMETHING", "shipment_id": 3})) is None


def test_an_identity_refusal_is_a_critical_identity_mismatch_and_a_seal_refusal_is_not() -> None:
    refused = facts(
        "receipt.refused",
        {"code": "patient-mismatch", "site": "TC-1"},
        entity="shipment",
        entity_id="3",
        reason="do not use this product",
    )
    source = rules.classify(refused)
    assert source is not None
    assert (source.alert_type, source.severity, source.shipment_id) == (
        "identity_mismatch",
        "critical",
        3,
    )
    assert source.details["message"] == "do not use this product"
    other = facts("receipt.refused", {"code": "bad-signature"}, entity="shipment", entity_id="3")
    assert rules.classify(other) is None


def test_other_events_and_closings_raise_no_alert() -> None:
    assert rules.classify(facts("excursion.closed", {"kind": "HIGH", "shipment_id": 3})) is None
    assert rules.classify(facts("shipment.accept", {"status": "received"})) is None
    assert rules.classify(facts("excursion.opened", {"kind": "HIGH"})) is None


def test_a_subscription_matches_by_site_severity_type_and_start() -> None:
    assert rules.matches(subscription(), alert())
    assert rules.matches(subscription(site_id="TC-1"), alert())
    assert not rules.matches(subscription(site_id="TC-2"), alert())
    assert rules.matches(subscription(min_severity="warning"), alert(severity="warning"))
    assert not rules.matches(subscription(min_severity="critical"), alert(severity="warning"))
    only_loss = subscription(alert_types=frozenset({"signal_loss"}))
    assert not rules.matches(only_loss, alert())
    assert rules.matches(only_loss, alert("signal_loss"))
    assert not rules.matches(subscription(from_seq=42), alert(seq=42))
    assert rules.matches(subscription(from_seq=41), alert(seq=42))


def test_the_signature_is_an_hmac_sha256_of_time_dot_body_that_verifies() -> None:
    body = b'{"type":"excursion_opened"}'
    header = rules.signature("s3cret", 1_700_000_000, body)
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert rules.verify_signature("s3cret", header, body, now=1_700_000_100)


def test_a_signature_fails_for_another_body_secret_or_a_stale_time() -> None:
    body = b"{}"
    header = rules.signature("s3cret", 1_700_000_000, body)
    assert not rules.verify_signature("s3cret", header, b"{ }", now=1_700_000_000)
    assert not rules.verify_signature("other", header, body, now=1_700_000_000)
    assert not rules.verify_signature("s3cret", header, body, now=1_700_000_301)
    assert not rules.verify_signature("s3cret", "v1=abc", body, now=1_700_000_000)


def test_webhook_answers_are_delivered_retried_or_failed() -> None:
    assert rules.webhook_outcome(200) == rules.webhook_outcome(204) == "delivered"
    for status in (None, 408, 429, 500, 502, 503):
        assert rules.webhook_outcome(status) == "retry", status
    for status in (301, 400, 401, 404, 410, 422):
        assert rules.webhook_outcome(status) == "failed", status


def test_smtp_replies_are_delivered_retried_or_failed() -> None:
    assert rules.smtp_outcome(250) == "delivered"
    assert rules.smtp_outcome(None) == rules.smtp_outcome(451) == "retry"
    assert rules.smtp_outcome(550) == "failed"


def test_backoff_doubles_from_the_base_up_to_the_cap() -> None:
    waits = [rules.backoff_s(n, base_s=30, max_s=3600) for n in range(1, 10)]
    assert waits == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert rules.backoff_s(10_000, base_s=30, max_s=3600) == 3600


def test_a_delivery_is_retried_until_its_last_attempt_then_failed() -> None:
    assert rules.next_step("retry", 1, max_attempts=3) == "pending"
    assert rules.next_step("retry", 3, max_attempts=3) == "failed"
    assert rules.next_step("failed", 1, max_attempts=3) == "failed"
    assert rules.next_step("delivered", 3, max_attempts=3) == "delivered"


def test_targets_are_checked_and_a_urls_password_is_hidden() -> None:
    assert rules.check_target("webhook", "https://example.org/x") == "https://example.org/x"
    assert rules.check_target("email", "qa@example.org") == "qa@example.org"
    for channel, target in (
        ("webhook", "ftp://example.org/"),
        ("webhook", "http:///nohost"),
        ("email", "not an address"),
        ("email", "a@b@c"),
        ("sms", "123"),
    ):
        with pytest.raises(ValidationError):
            rules.check_target(channel, target)
    shown = rules.shown_target("webhook", "https://u:pw@example.org:8443/h?x=1")
    assert shown == "https://u:***@example.org:8443/h?x=1"


def test_unknown_alert_types_and_severities_are_refused() -> None:
    assert rules.check_alert_types(["signal_loss"]) == {"signal_loss"}
    with pytest.raises(ValidationError):
        rules.check_alert_types(["fire"])
    with pytest.raises(ValidationError):
        rules.severity_rank("urgent")


def test_the_payload_and_email_carry_the_alert_and_its_audit_event() -> None:
    body = rules.payload(alert(), 5)
    assert body["id"] == "42-5"
    assert body["audit"]["seq"] == 42 and body["audit"]["hash"] == "ab" * 32
    assert (body["type"], body["severity"], body["coi"]) == (
        "excursion_opened",
        "critical",
        "G123426000001X",
    )
    subject = rules.email_subject(body)
    assert subject.startswith("[coldchain] CRITICAL: Temperature excursion opened, shipment 3")
    text = rules.email_body(body)
    assert "COI: G123426000001X" in text and "Audit event 42" in text and "kind: HIGH" in text
