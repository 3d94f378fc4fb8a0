"""The pure parts of broker accounts: Mosquitto's password hash and the ACL text, no I/O."""

from __future__ import annotations

import base64
import re

import pytest

from coldchain.domain.errors import ValidationError
from coldchain.services.broker_accounts import (
    ACL_MARKER,
    BrokerFileError,
    acl_text,
    check_password,
    check_username,
    hash_password,
    new_password,
    parse_password_file,
    render_password_file,
    split_acl,
)

# Made by Mosquitto 2.0.11's own `mosquitto_passwd -b FILE alice secret`.
MOSQUITTO_LINE = (
    "alice:$7$101$h5J3x65sfOqxDyf2$nK4ZVd7Lh/cmsmfLkdEwJ6gAVsXfBJnrMDQCtouFL7FUTU4Nb2UNjMhjii+"
    "nu5q7ygaafg6FTifiICdHJjTWkQ=="
)


def test_a_hash_made_with_mosquittos_salt_equals_mosquitto_passwds_own() -> None:
    encoded = parse_password_file(MOSQUITTO_LINE)["alice"]
    salt = base64.b64decode(encoded.split("$")[3])
    assert hash_password("secret", salt=salt) == encoded
    assert check_password("secret", encoded)
    assert not check_password("Secret", encoded)


def test_a_new_hash_has_mosquittos_layout_and_a_fresh_salt() -> None:
    first, second = hash_password("pw"), hash_password("pw")
    layout = re.compile(r"^\$7\$101\$[A-Za-z0-9+/]{16}\$[A-Za-z0-9+/]{86}==$")
    assert layout.match(first) and layout.match(second)
    assert first != second
    assert check_password("pw", first) and check_password("pw", second)


def test_the_iteration_count_travels_in_the_hash() -> None:
    encoded = hash_password("pw", iterations=2000)
    assert encoded.startswith("$7$2000$") and check_password("pw", encoded)
    with pytest.raises(ValueError):
        hash_password("pw", iterations=0)


@pytest.mark.parametrize("encoded", ["", "$6$abc$def", "$7$x$abc$def", "$7$101$!!$??", "plain"])
def test_a_malformed_hash_matches_no_password(encoded: str) -> None:
    assert not check_password("pw", encoded)


def test_new_passwords_are_long_random_and_need_no_quoting_in_a_url() -> None:
    passwords = {new_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", p) for p in passwords)


def test_the_password_file_is_read_and_written_in_order() -> None:
    text = "b:$7$1$x$y\n\na:$7$2$z$w\n"
    entries = parse_password_file(text)
    assert list(entries) == ["b", "a"]
    assert render_password_file(entries) == "b:$7$1$x$y\na:$7$2$z$w\n"
    assert parse_password_file("") == {}
    with pytest.raises(BrokerFileError, match="line 2"):
        parse_password_file("a:$7$1$x$y\nbroken\n")


@pytest.mark.parametrize(
    "username", ["", "a:b", "a b", "a/b", "+", "#", "-lead", "a\nb", "x" * 65, "é"]
)
def test_a_username_unsafe_in_the_files_or_in_a_topic_is_refused(username: str) -> None:
    with pytest.raises(ValidationError):
        check_username(username)


def test_logger_ids_and_the_backend_name_are_valid_usernames() -> None:
    for name in ("L-1", "SIM-001", "coldchain-backend", "a", "A_b-9", "x" * 64):
        assert check_username(name) == name


def test_loggers_may_write_only_their_own_readings_and_status_and_read_their_own_acks() -> None:
    rules = [line for line in acl_text([]).splitlines() if line and not line.startswith("#")]
    assert rules == [
        "pattern write coldchain/v1/loggers/%u/readings",
        "pattern write coldchain/v1/loggers/%u/status",
        "pattern read coldchain/v1/loggers/%u/ack",
    ]


def test_each_backend_account_reads_readings_and_statuses_and_writes_acks_and_alerts() -> None:
    text = acl_text(["coldchain-backend", "spare", "coldchain-backend"])
    blocks = text.split("\nuser ")[1:]
    assert [block.splitlines()[0] for block in blocks] == ["coldchain-backend", "spare"]
    for block in blocks:
        assert [line for line in block.splitlines()[1:] if line] == [
            "topic read coldchain/v1/loggers/+/readings",
            "topic read coldchain/v1/loggers/+/status",
            "topic write coldchain/v1/loggers/+/ack",
            "topic write coldchain/v1/alerts/excursions",
        ]
    with pytest.raises(ValidationError):
        acl_text(["bad name"])


def test_the_operators_own_rules_stay_above_the_generated_part_on_every_rewrite() -> None:
    local = "# dashboards\nuser grafana\ntopic read coldchain/v1/alerts/excursions\n"
    first = acl_text(["coldchain-backend"], local)
    assert first.startswith(local) and ACL_MARKER in first
    kept, backends = split_acl(first)
    assert kept == local and backends == ["coldchain-backend"]
    assert acl_text(backends, kept) == first
    # A file coldchain never wrote is all the operator's: kept whole, no backend listed.
    assert split_acl(local) == (local, [])
