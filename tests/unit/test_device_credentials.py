"""The simulated loggers' credentials: lines or JSON, as `coldchain loggers provision` feeds."""

from __future__ import annotations

import dataclasses

import pytest

from devices.credentials import parse_credentials
from devices.fleet import Fleet
from devices.logger import Broker
from devices.scenarios import Scenario


def test_lines_and_json_give_the_same_passwords() -> None:
    lines = "# provisioned 2026-11-29\nL-1 aaa\n\n  L-2\tb-b_b  \n"
    assert parse_credentials(lines) == {"L-1": "aaa", "L-2": "b-b_b"}
    assert parse_credentials('{"L-1": "aaa", "L-2": "b-b_b"}') == parse_credentials(lines)


@pytest.mark.parametrize("text", ["L-1\n", "L-1 a b\n", '{"L-1": 5}', "{not json"])
def test_a_malformed_credentials_file_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_credentials(text)


def test_each_logger_connects_as_itself_with_its_own_password() -> None:
    broker = Broker("127.0.0.1", 1883, username="someone", password="x")
    fleet = Fleet(
        ["L-1", "L-2"],
        broker,
        Scenario(name="nominal", interval_s=1.0),
        ack_timeout_s=0,
        credentials={"L-1": "p1", "L-2": "p2"},
    )
    assert [sim.broker for sim in fleet.loggers] == [
        dataclasses.replace(broker, username="L-1", password="p1"),
        dataclasses.replace(broker, username="L-2", password="p2"),
    ]
    with pytest.raises(ValueError, match="L-2"):
        Fleet(["L-1", "L-2"], broker, Scenario(name="nominal", interval_s=1.0),
              ack_timeout_s=0, credentials={"L-1": "p1"})  # fmt: skip
