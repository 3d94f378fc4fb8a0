"""What the fault tests share: traced loggers, exact accounting of readings, process kills.

Every fault test runs simulated loggers (`devices.logger.SimLogger`, in this process) that
record each reading they generate, keep it until the backend's end-to-end ack and resend it
after a short timeout. At the end, the readings generated must be exactly the readings
stored plus the readings dead-lettered: same identities (logger, name, time), each stored
once, nothing missing, nothing extra.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.store.models import DeadLetter, DeadLetterMessage, IngestCounter, Reading
from devices.logger import Broker, SimLogger
from devices.scenarios import Reading as Sample
from devices.scenarios import Scenario, plan
from tests.support.processes import ColdchainProcess, process_tree

# (logger_id, name, time in whole milliseconds): the simulator's times are on a ms grid.
Identity = tuple[str, str, int]

# Filled by the tests, printed at the end of the run by tests/faults/conftest.py.
REPORTS: list[str] = []


def eventually(check: Callable[[], Any], timeout_s: float = 30.0, every_s: float = 0.1) -> Any:
    """Poll until check() returns something truthy, or fail after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {timeout_s}s (last: {result!r})")
        time.sleep(every_s)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


class TracedLogger(SimLogger):
    """A simulated logger that records every reading it generates.

    `clock_offset_s` sets its clock wrong (readings timestamped that far ahead, or behind if
    negative). `quiet()` stops it generating new readings while it goes on resending the
    unacked ones, so that a test knows the final set of generated readings.
    """

    def __init__(
        self,
        logger_id: str,
        broker_url: str,
        *,
        interval_s: float = 0.05,
        ack_timeout_s: float = 1.0,
        clock_offset_s: float = 0.0,
    ) -> None:
        super().__init__(
            logger_id,
            Broker.from_url(broker_url),
            Scenario("nominal", interval_s=interval_s, seed=hash(logger_id) % 1000),
            ack_timeout_s=ack_timeout_s,
            out=lambda _line: None,
        )
        self.clock_offset_s = clock_offset_s
        self.generated: list[Sample] = []
        self.stop_event = threading.Event()
        self._quiet = False
        self._trace_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def start(self) -> TracedLogger:
        self._thread = threading.Thread(
            target=self.run, args=(self.stop_event,), name=self.logger_id, daemon=True
        )
        self._thread.start()
        return self

    def quiet(self) -> None:
        """Generate nothing more; keep resending what is unacked."""
        with self._trace_lock:
            self._quiet = True

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(15)
            assert not self._thread.is_alive(), f"{self.logger_id} did not stop"

    def preload(self, readings: Iterable[Sample]) -> None:
        """Fill the buffer as after a reboot that lost track of the acks: all resent at once."""
        self._remember(list(readings), time.monotonic(), sent=False)

    def generated_since(self, count: int) -> list[Sample]:
        with self._trace_lock:
            return list(self.generated[count:])

    def buffered_times(self) -> set[float]:
        with self._lock:
            return set(self._buffer)

    def identities(self) -> set[Identity]:
        with self._trace_lock:
            readings = list(self.generated)
        found: set[Identity] = set()
        for reading in readings:
            found.add((self.logger_id, "temp", _ms(reading.time)))
            if reading.batt_pct is not None:
                found.add((self.logger_id, "batt", _ms(reading.time)))
        return found

    # The two hooks into SimLogger: where the scenario's clock starts, and each new reading.

    def _play(self, stop: threading.Event) -> None:
        start = round(time.time() + self.clock_offset_s, 3)
        started = time.monotonic()
        for send in plan(self.scenario, start):
            if not self._sleep_until(started + send.at_s, stop):
                return
            self._send(send.readings)

    def _send(self, readings: tuple[Sample, ...]) -> None:
        with self._trace_lock:
            if self._quiet:
                return
            self.generated.extend(readings)
        super()._send(readings)


def start_loggers(broker_url: str, ids: Sequence[str], **options: Any) -> list[TracedLogger]:
    """Start traced loggers and wait until each is connected."""
    loggers = [TracedLogger(logger_id, broker_url, **options).start() for logger_id in ids]
    eventually(lambda: all(sim.connected_once for sim in loggers), timeout_s=15)
    return loggers


def stored_identities(sessions: sessionmaker[Session], logger_ids: Iterable[str]) -> list[Identity]:
    """Every stored reading of these loggers (a list: a duplicate would show twice)."""
    with sessions() as session:
        rows = session.execute(
            select(Reading.logger_id, Reading.name, Reading.time_us).where(
                Reading.logger_id.in_(list(logger_ids))
            )
        ).all()
    return [(logger_id, name, round(time_us / 1000)) for logger_id, name, time_us in rows]


def stored_count(sessions: sessionmaker[Session], logger_ids: Iterable[str]) -> int:
    return len(stored_identities(sessions, logger_ids))


@dataclass
class DeadLetters:
    """The dead-lettered records of some loggers, resolved to reading identities."""

    identities: list[Identity] = field(default_factory=list)
    reasons: Counter[str] = field(default_factory=Counter)
    whole_messages: int = 0


def dead_lettered(sessions: sessionmaker[Session], logger_ids: Iterable[str]) -> DeadLetters:
    """Read the dead-letter table and resolve each refused record of a pack to its identity."""
    found = DeadLetters()
    with sessions() as session:
        rows = session.execute(
            select(DeadLetterMessage.logger_id, DeadLetterMessage.payload, DeadLetter)
            .join(DeadLetter, DeadLetter.message_id == DeadLetterMessage.id)
            .where(DeadLetterMessage.logger_id.in_(list(logger_ids)))
        ).all()
        for logger_id, payload, letter in rows:
            found.reasons[letter.reason] += 1
            if letter.record_index is None:
                found.whole_messages += 1
                continue
            name, at = resolve_record(json.loads(payload), letter.record_index)
            found.identities.append((logger_id, name, _ms(at)))
    return found


def resolve_record(records: list[dict[str, Any]], index: int) -> tuple[str, float]:
    """The name and absolute time of record `index` of a SenML pack (base fields applied)."""
    base_time = 0.0
    for position, record in enumerate(records):
        base_time = float(record.get("bt", base_time))
        if position == index:
            return str(record["n"]), base_time + float(record.get("t", 0))
    raise IndexError(index)


def ingest_counter(sessions: sessionmaker[Session], name: str) -> int:
    with sessions() as session:
        value = session.get(IngestCounter, name)
        return 0 if value is None else int(value.value)


def account(
    title: str,
    loggers: Sequence[TracedLogger],
    sessions: sessionmaker[Session],
    *,
    refused: Iterable[str] = (),
    reason: str | None = None,
) -> None:
    """Assert published = stored + dead-lettered exactly, and record the figures.

    `refused` names the loggers whose every reading must be dead-lettered (for `reason`);
    the others' every reading must be stored once, and none of theirs dead-lettered.
    """
    refused = set(refused)
    ids = [sim.logger_id for sim in loggers]
    published: set[Identity] = set()
    for sim in loggers:
        published |= sim.identities()
    expected_dead = {identity for identity in published if identity[0] in refused}
    stored = stored_identities(sessions, ids)
    dead = dead_lettered(sessions, ids)
    duplicates = [identity for identity, n in Counter(stored).items() if n > 1]
    assert not duplicates, f"stored twice: {duplicates[:5]}"
    stored_set = set(stored)
    assert stored_set - published == set(), (
        f"stored but never published: {sorted(stored_set - published)[:5]}"
    )
    missing = published - expected_dead - stored_set
    assert not missing, f"{len(missing)} readings lost, e.g. {sorted(missing)[:5]}"
    dead_set = set(dead.identities)
    assert dead.whole_messages == 0, f"whole messages dead-lettered: {dead.reasons}"
    assert dead_set == expected_dead, (
        f"dead letters differ: {len(dead_set - expected_dead)} unexpected, "
        f"{len(expected_dead - dead_set)} missing; reasons {dict(dead.reasons)}"
    )
    assert stored_set & dead_set == set()
    if reason is not None and dead.reasons:
        assert set(dead.reasons) == {reason}, dict(dead.reasons)
    assert len(published) == len(stored_set) + len(dead_set)
    engine = os.environ.get("COLDCHAIN_TEST_ENGINE", "sqlite")
    messages = sum(sim.messages_sent for sim in loggers)
    resends = sum(sim.resends for sim in loggers)
    REPORTS.append(
        f"{title} [{engine}]: published {len(published)} readings "
        f"({messages} messages, {resends} resends); stored {len(stored_set)}; "
        f"dead-lettered {len(dead_set)}"
        + (f" ({len(dead.identities)} dead-letter records with resends)" if dead_set else "")
        + f"; duplicates ignored {ingest_counter(sessions, 'readings_duplicate')}"
    )


def wait_all_stored(
    sessions: sessionmaker[Session],
    loggers: Sequence[TracedLogger],
    *,
    timeout_s: float = 60.0,
) -> None:
    """Stop generating, then wait until every generated reading is stored and acked."""
    for sim in loggers:
        sim.quiet()
    expected = set().union(*(sim.identities() for sim in loggers))
    ids = [sim.logger_id for sim in loggers]
    eventually(
        lambda: len(expected - set(stored_identities(sessions, ids))) == 0,
        timeout_s=timeout_s,
        every_s=0.25,
    )
    # The backend's acks reach the loggers: their buffers empty.
    eventually(lambda: all(sim.unacked == 0 for sim in loggers), timeout_s=timeout_s)


def kill_tree(process: ColdchainProcess) -> int:
    """SIGKILL a process and all its descendants (a worker and its ack helper) at once."""
    assert process.process is not None
    pids = process_tree(process.process.pid)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(10)
    return len(pids)


def start_worker(
    env: dict[str, str], log_path: Path, args: Sequence[str] = ("ingest",)
) -> ColdchainProcess:
    """Start `coldchain ingest` and wait until it is connected to the broker."""
    worker = ColdchainProcess(list(args), env, log_path).start()
    worker.wait_for_log("connected to", timeout_s=30)
    return worker


def log_lines(path: Path, text: str) -> list[str]:
    return [line for line in path.read_text(errors="replace").splitlines() if text in line]


def assert_unacked_since(loggers: Sequence[TracedLogger], marks: dict[str, int]) -> int:
    """Every reading generated since `marks` is still in its logger's buffer (not acked).

    The last reading of each logger may be between its record and its buffer: left out.
    """
    held = 0
    for sim in loggers:
        since = sim.generated_since(marks[sim.logger_id])[:-1]
        missing = {reading.time for reading in since} - sim.buffered_times()
        assert not missing, f"{sim.logger_id}: {len(missing)} readings acked while failing"
        held += len(since)
    return held


def retry_delays(log_text: str) -> list[float]:
    """The backoff delays of the worker's failed commits, in order (errors may span lines)."""
    return [
        float(delay)
        for delay in re.findall(r"not stored \(.*?\); retrying in ([0-9.]+)s", log_text, re.S)
    ]
