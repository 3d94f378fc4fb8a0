"""Loggers with wrong clocks, and a logger that reboots and resends its whole buffer."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from coldchain.domain.senml import Reason
from tests.faults.harness import (
    TracedLogger,
    account,
    dead_lettered,
    eventually,
    ingest_counter,
    start_worker,
    stored_identities,
    wait_all_stored,
)
from tests.support.processes import Mosquitto

pytestmark = pytest.mark.faults

TWO_HOURS_S = 7200.0


def test_a_fast_clock_is_dead_lettered_a_slow_one_stored_and_a_reboot_resend_changes_nothing(
    fault_broker: Mosquitto,
    fault_env: dict[str, str],
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    worker = start_worker(fault_env, tmp_path / "worker.log")
    options = {"interval_s": 0.05, "ack_timeout_s": 1.0}
    fast = TracedLogger("L-1", fault_broker.url, clock_offset_s=TWO_HOURS_S, **options).start()
    slow = TracedLogger("L-2", fault_broker.url, clock_offset_s=-TWO_HOURS_S, **options).start()
    before_reboot = TracedLogger("L-3", fault_broker.url, **options).start()
    after_reboot: TracedLogger | None = None
    try:
        eventually(lambda: len(stored_identities(sessions, ["L-3"])) > 100)
        # L-3 reboots: it has lost track of the acks and resends everything it ever took,
        # as one store-and-forward backlog, then goes on sampling.
        before_reboot.quiet()
        wait_all_stored(sessions, [before_reboot])
        before_reboot.stop()
        kept = before_reboot.identities()
        duplicates = ingest_counter(sessions, "readings_duplicate")
        after_reboot = TracedLogger("L-3", fault_broker.url, **options)
        after_reboot.preload(before_reboot.generated)
        after_reboot.start()
        eventually(lambda: ingest_counter(sessions, "readings_duplicate") >= duplicates + len(kept))
        assert kept <= set(stored_identities(sessions, ["L-3"]))
        wait_all_stored(sessions, [slow, after_reboot])
        # The fast logger's readings are never acked; each is dead-lettered as future-time.
        fast.quiet()
        eventually(lambda: set(dead_lettered(sessions, ["L-1"]).identities) >= fast.identities())
        assert fast.unacked == len(fast.generated)
    finally:
        for sim in (fast, slow, after_reboot or before_reboot):
            sim.stop()
        code = worker.stop()
    assert code == 0, worker.log()
    assert after_reboot is not None
    account(
        "clock 2 h fast (refused), 2 h slow (stored), a reboot resending its buffer",
        [fast, slow, before_reboot, after_reboot],
        sessions,
        refused=["L-1"],
        reason=str(Reason.FUTURE_TIME),
    )
