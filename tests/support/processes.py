"""Start real Mosquitto and coldchain processes on free ports, and stop them cleanly."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

from coldchain.demo import free_port
from coldchain.demo import wait_for_port as demo_wait_for_port

ROOT = Path(__file__).resolve().parents[2]
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    """Wait until something listens on the port, or fail."""
    if not demo_wait_for_port(port, timeout_s):
        raise TimeoutError(f"nothing listens on port {port} after {timeout_s}s")


class Mosquitto:
    """A real Mosquitto broker on a free port, with the shipped config/mosquitto.conf.

    The shipped settings (persistence on, autosave, unlimited in-flight window and queues)
    are layered, as `coldchain demo` does, with a listener and a `persistence_location` in
    the work folder: a broker restarted on the same port and folder gets back the sessions
    and queued messages it had saved.
    """

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        shipped = (ROOT / "config" / "mosquitto.conf").read_text()
        self.conf.write_text(
            f"{shipped}\n# --- added by the tests ---\n"
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            f"persistence_location {workdir}/\n"
            # Run as root, Mosquitto switches to its own user, which cannot write the folder.
            f"user {getpass.getuser()}\n"
            f"log_dest file {workdir / 'mosquitto.log'}\n"
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def persistence_file(self) -> Path:
        return self.workdir / "mosquitto.db"

    def start(self) -> Mosquitto:
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)
        return self

    def stop(self) -> None:
        """Stop gracefully (SIGTERM): Mosquitto saves its persistence file as it exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def kill(self) -> None:
        """Kill with SIGKILL: what changed since the last autosave is lost."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self, *, graceful: bool = True) -> Mosquitto:
        """Stop (SIGTERM) or kill (SIGKILL) the broker and start it again on the same port."""
        if graceful:
            self.stop()
        else:
            self.kill()
        return self.start()


class ColdchainProcess:
    """`python -m coldchain ...` (or another module) as a child process with its own env."""

    def __init__(
        self, args: list[str], env: Mapping[str, str], log_path: Path, module: str = "coldchain"
    ):
        self.module = module
        self.args = args
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self._log = None

    def start(self) -> ColdchainProcess:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args],
            env=self.env,
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        return self

    def stop(self, timeout_s: float = 20.0) -> int:
        """Send SIGTERM and return the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
        return int(self.process.returncode)

    def wait(self, timeout_s: float = 30.0) -> int:
        """Wait for the process to exit by itself and return its exit code."""
        assert self.process is not None
        code = self.process.wait(timeout=timeout_s)
        if self._log is not None:
            self._log.close()
        return int(code)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout_s: float = 20.0) -> None:
        """Wait until the process log contains the text (or the process dies)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.log_path.exists() and text in self.log():
                return
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"process exited early:\n{self.log()}")
            time.sleep(0.05)
        raise TimeoutError(f"{text!r} not in the log after {timeout_s}s:\n{self.log()}")


def process_tree(pid: int) -> list[int]:
    """The process and all its descendants (a `--workers N` parent and its children)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(process_tree(int(child)))
    return found
