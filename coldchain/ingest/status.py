"""Each ingest worker's state in a small JSON file, which /healthz reads.

A worker that cannot commit (the database locked, full or away) keeps its messages unacked
and retries with backoff, while the web app's own `SELECT 1` may well succeed: /healthz
would say "ok" while no reading is stored. So each worker writes its state to
`{ingest.status_dir}/ingest-{client_id}.json`, atomically (a temporary file renamed over
the old one): when the state changes, and every few seconds from a thread of its own, so
that the file stays fresh while the worker waits on the database.

States: `ok` (the last batch was committed, or none was due), `failing` (the last commit
failed, or a batch has been storing for longer than `ingest.status_stale_s`: a worker
stuck on the database). A worker that stops cleanly removes its file. A file not refreshed
for `ingest.status_stale_s` belongs to a worker that died without cleaning up (kill -9, a
crash): /healthz shows it as `stale` and does not count it, so a dead worker never keeps
/healthz at 503; `coldchain ingest --workers N` restarts a dead worker, whose new file
replaces the old one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "ingest-"
# The most seconds between two writes of a running worker's file.
HEARTBEAT_MAX_S = 5.0


def _iso(epoch_s: float | None) -> str | None:
    if epoch_s is None:
        return None
    moment = datetime.fromtimestamp(epoch_s, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _epoch(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def status_path(directory: Path, client_id: str) -> Path:
    """Return the status file of the worker with this MQTT client id."""
    return directory / f"{PREFIX}{client_id}.json"


class WorkerStatus:
    """What one worker tells /healthz: written on each change and every few seconds.

    The worker's thread only sets attributes (one clock read per batch); the files are
    written on state changes and by the heartbeat thread.
    """

    def __init__(self, directory: Path, client_id: str, *, stale_s: float) -> None:
        self.path = status_path(directory, client_id)
        self.client_id = client_id
        self.stale_s = stale_s
        self.state = "ok"
        self.since = time.time()
        self.last_success: float | None = None
        self.last_failure: float | None = None
        self.error: str | None = None
        self.batch_started: float | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Write the first file and start the heartbeat thread."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.write()
        self._thread = threading.Thread(
            target=self._beat, name="coldchain-ingest-status", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the heartbeat and remove the file: a worker stopped cleanly is not failing."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self.path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove %s: %s", self.path, exc)

    def storing(self) -> None:
        """Note that a batch starts storing (a worker stuck in it turns `failing`)."""
        self.batch_started = time.time()

    def stored(self) -> None:
        """Note a committed batch."""
        now = time.time()
        self.batch_started = None
        self.last_success = now
        if self.state != "ok":
            with self._lock:
                self.state, self.since, self.error = "ok", now, None
            log.info("storing again after a failure")
            self.write()

    def failed(self, error: str) -> None:
        """Note a failed commit (the batch stays unacked and is retried)."""
        now = time.time()
        self.batch_started = None
        self.last_failure = now
        changed = self.state != "failing"
        with self._lock:
            if changed:
                self.state, self.since = "failing", now
            self.error = error[:500]
        if changed:
            self.write()

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Return the file's content as of `now`."""
        now = time.time() if now is None else now
        with self._lock:
            state, since, error = self.state, self.since, self.error
        started = self.batch_started
        if state == "ok" and started is not None and now - started > self.stale_s:
            state, since = "failing", started
            error = f"a batch has been storing for {now - started:.0f}s"
        return {
            "client_id": self.client_id,
            "pid": os.getpid(),
            "state": state,
            "since": _iso(since),
            "updated_at": _iso(now),
            "last_success_at": _iso(self.last_success),
            "last_failure_at": _iso(self.last_failure),
            "error": error,
        }

    def write(self) -> None:
        """Replace the file atomically: a reader sees the old content or the new, whole."""
        body = json.dumps(self.snapshot())
        temporary: str | None = None
        try:
            fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".ingest-")
            with os.fdopen(fd, "w") as handle:
                handle.write(body)
            os.replace(temporary, self.path)
        except OSError as exc:
            # The status must never stop ingest (its disk may be the full one).
            log.warning("cannot write %s: %s", self.path, exc)
            if temporary is not None:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)

    def _beat(self) -> None:
        interval_s = max(0.2, min(HEARTBEAT_MAX_S, self.stale_s / 3))
        while not self._stopping.wait(interval_s):
            self.write()


@dataclass(frozen=True)
class IngestHealth:
    """What /healthz says of the workers: a summary, each worker's state, and whether to 503."""

    summary: str
    workers: dict[str, dict[str, Any]]
    failing: bool


def read_ingest_health(
    directory: Path, *, stale_s: float, now: float | None = None
) -> IngestHealth:
    """Read every worker's status file; a file older than `stale_s` is a dead worker's."""
    now = time.time() if now is None else now
    workers: dict[str, dict[str, Any]] = {}
    try:
        paths = sorted(directory.glob(f"{PREFIX}*.json"))
    except OSError:
        paths = []
    for path in paths:
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue  # removed between glob and read, or not ours
        if not isinstance(body, dict):
            continue
        client_id = str(body.get("client_id") or path.stem.removeprefix(PREFIX))
        updated = _epoch(body.get("updated_at"))
        state = str(body.get("state"))
        if updated is None or now - updated > stale_s:
            state = "stale"
        workers[client_id] = {
            "state": state,
            "since": body.get("since"),
            "updated_at": body.get("updated_at"),
            "last_success_at": body.get("last_success_at"),
            "last_failure_at": body.get("last_failure_at"),
            "error": body.get("error"),
        }
    failing = [name for name, worker in workers.items() if worker["state"] == "failing"]
    if failing:
        summary = "failing: " + ", ".join(failing)
    elif any(worker["state"] == "ok" for worker in workers.values()):
        summary = "ok"
    else:
        summary = "no worker reporting"
    return IngestHealth(summary, workers, bool(failing))
