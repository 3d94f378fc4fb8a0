"""Run a fleet of simulated loggers in one process, one thread per logger."""

from __future__ import annotations

import dataclasses
import logging
import re
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import FrameType

from devices.logger import DEFAULT_BUFFER_MAX, Broker, SimLogger
from devices.scenarios import Scenario, logger_seed

log = logging.getLogger(__name__)

LOGGER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def logger_ids(spec: str, prefix: str = "SIM") -> list[str]:
    """Turn `N` into PREFIX-001..N, or a comma list into explicit, validated ids."""
    spec = spec.strip()
    if spec.isdigit():
        count = int(spec)
        if count < 1:
            raise ValueError("--loggers needs at least one logger")
        width = max(3, len(str(count)))
        ids = [f"{prefix}-{n:0{width}d}" for n in range(1, count + 1)]
    else:
        ids = [part.strip() for part in spec.split(",") if part.strip()]
        if not ids:
            raise ValueError("--loggers needs a count or a comma list of ids")
    for logger_id in ids:
        if not LOGGER_ID.fullmatch(logger_id):
            raise ValueError(f"invalid logger id {logger_id!r}: must match {LOGGER_ID.pattern}")
    if len(set(ids)) != len(ids):
        raise ValueError("logger ids must be unique")
    return ids


class Fleet:
    """Simulated loggers that play one scenario together until it ends or they are stopped."""

    def __init__(
        self,
        ids: Sequence[str],
        broker: Broker,
        scenario: Scenario,
        *,
        ack_timeout_s: float,
        buffer_max: int = DEFAULT_BUFFER_MAX,
        out: Callable[[str], None] = print,
        credentials: Mapping[str, str] | None = None,
    ) -> None:
        self.stop_event = threading.Event()
        if credentials is not None:
            missing = [logger_id for logger_id in ids if logger_id not in credentials]
            if missing:
                raise ValueError(f"no password for logger(s) {', '.join(missing)}")
        self.loggers = [
            SimLogger(
                logger_id,
                # With per-logger passwords each logger connects as itself (its id).
                broker
                if credentials is None
                else dataclasses.replace(
                    broker, username=logger_id, password=credentials[logger_id]
                ),
                dataclasses.replace(scenario, seed=logger_seed(scenario.seed, logger_id)),
                ack_timeout_s=ack_timeout_s,
                buffer_max=buffer_max,
                out=out,
            )
            for logger_id in ids
        ]
        self._results: dict[str, bool] = {}

    def stop(self) -> None:
        """Ask every logger to stop cleanly."""
        self.stop_event.set()

    def run(self, duration_s: float | None = None) -> bool:
        """Run until every logger is done, `duration_s` passes or stop(); True if all clean."""
        threads = [
            threading.Thread(target=self._run_one, args=(sim,), name=sim.logger_id, daemon=True)
            for sim in self.loggers
        ]
        for thread in threads:
            thread.start()
        deadline = None if duration_s is None else time.monotonic() + duration_s
        while alive := [thread for thread in threads if thread.is_alive()]:
            if deadline is not None and time.monotonic() >= deadline:
                self.stop()
            # Short waits keep the main thread responsive to SIGINT and SIGTERM.
            alive[0].join(0.1)
        return all(self._results.get(sim.logger_id, False) for sim in self.loggers)

    def _run_one(self, sim: SimLogger) -> None:
        try:
            self._results[sim.logger_id] = sim.run(self.stop_event)
        except Exception:
            log.exception("%s failed", sim.logger_id)
            self._results[sim.logger_id] = False


def run_until_signalled(fleet: Fleet, duration_s: float | None) -> bool:
    """Run the fleet, stopping it cleanly on SIGINT or SIGTERM."""

    def handle(signum: int, frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        fleet.stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return fleet.run(duration_s)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
