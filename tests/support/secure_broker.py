"""A real Mosquitto run from the shipped config/mosquitto-secure.conf, and MQTT clients with
accounts, for the broker security tests."""

from __future__ import annotations

import getpass
import signal
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from coldchain.demo import free_port
from coldchain.services.broker_accounts import BrokerFiles
from tests.support.processes import MOSQUITTO, ROOT, wait_for_port

SECURE_CONF = ROOT / "config" / "mosquitto-secure.conf"


def make_certificates(out: Path) -> Path:
    """Run tools/make_test_ca.py into `out` and return the folder (ca.crt, server.*)."""
    subprocess.run(
        [sys.executable, str(ROOT / "tools" / "make_test_ca.py"), str(out)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return out


class SecureMosquitto:
    """Mosquitto with the shipped secure config, its paths and ports moved into a test folder."""

    def __init__(self, workdir: Path, files: BrokerFiles, certs: Path):
        self.workdir = workdir
        self.files = files
        self.certs = certs
        self.port = free_port()
        self.tls_port = free_port()
        self.pid_file = workdir / "mosquitto.pid"
        self.log_file = workdir / "mosquitto.log"
        self.conf = workdir / "mosquitto-secure.conf"
        text = SECURE_CONF.read_text()
        for old, new in (
            ("persistence_location /var/lib/mosquitto/", f"persistence_location {workdir}/"),
            ("pid_file /run/mosquitto/mosquitto.pid", f"pid_file {self.pid_file}"),
            ("/etc/mosquitto/coldchain/passwd", str(files.password_file)),
            ("/etc/mosquitto/coldchain/acl", str(files.acl_file)),
            ("/etc/mosquitto/coldchain/ca.crt", str(certs / "ca.crt")),
            ("/etc/mosquitto/coldchain/server.crt", str(certs / "server.crt")),
            ("/etc/mosquitto/coldchain/server.key", str(certs / "server.key")),
            ("listener 8883\n", f"listener {self.tls_port} 127.0.0.1\n"),
            ("listener 1883 127.0.0.1\n", f"listener {self.port} 127.0.0.1\n"),
        ):
            # Each line must be in the shipped file: the test runs that file, not a lookalike.
            assert text.count(old) == 1, f"{old!r} not once in {SECURE_CONF}"
            text = text.replace(old, new)
        text += f"user {getpass.getuser()}\nlog_dest file {self.log_file}\nlog_type all\n"
        self.conf.write_text(text)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SecureMosquitto:
        with (self.workdir / "mosquitto.stderr").open("ab") as stderr:
            self.process = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=subprocess.DEVNULL, stderr=stderr
            )
        try:
            wait_for_port(self.port)
            wait_for_port(self.tls_port)
        except TimeoutError as exc:
            self.stop()
            errors = (self.workdir / "mosquitto.stderr").read_text(errors="replace")
            raise TimeoutError(f"{exc}; Mosquitto said: {errors}{self.log()}") from exc
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def reload(self) -> None:
        """Send SIGHUP: Mosquitto re-reads its password and ACL files."""
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)

    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def url(self, username: str, password: str, *, tls: bool = False) -> str:
        scheme, port = ("mqtts", self.tls_port) if tls else ("mqtt", self.port)
        return f"{scheme}://{username}:{password}@127.0.0.1:{port}"


@dataclass
class Client:
    """A paho MQTT 5 client that records what the broker answered and what it delivered."""

    client: mqtt.Client
    connack: mqtt.ReasonCode | None = None
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    pubacks: dict[int, mqtt.ReasonCode] = field(default_factory=dict)
    subacks: dict[int, list[mqtt.ReasonCode]] = field(default_factory=dict)
    disconnects: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    changed: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.changed = threading.Condition(self.lock)

    def _wait(self, check: Any, timeout_s: float) -> Any:
        with self.changed:
            if not self.changed.wait_for(check, timeout_s):
                raise TimeoutError(f"no answer from the broker after {timeout_s}s")
            return check()

    def publish(self, topic: str, payload: bytes | str, timeout_s: float = 5.0) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code (0 accepted, 0x87 refused)."""
        info = self.client.publish(topic, payload, qos=1)
        return int(self._wait(lambda: self.pubacks.get(info.mid), timeout_s).value)

    def subscribe(self, *topics: str, timeout_s: float = 5.0) -> list[int]:
        """Subscribe at QoS 1 and return the SUBACK's reason codes."""
        _rc, mid = self.client.subscribe([(topic, 1) for topic in topics])
        codes = self._wait(lambda: self.subacks.get(mid), timeout_s)
        return [int(code.value) for code in codes]

    def wait_disconnected(self, timeout_s: float = 5.0) -> None:
        """Wait until the broker has closed this client's connection."""
        self._wait(lambda: self.disconnects, timeout_s)

    def received(self) -> list[tuple[str, bytes]]:
        with self.lock:
            return list(self.messages)

    def wait_for(self, topic: str, payload: bytes, timeout_s: float = 5.0) -> None:
        """Wait until this exact message arrived."""
        self._wait(lambda: (topic, payload) in self.messages, timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connect(
    port: int,
    username: str | None,
    password: str | None,
    *,
    ca_file: Path | None = None,
    client_id: str | None = None,
    timeout_s: float = 5.0,
) -> Client:
    """Connect as a user (None: anonymously); the result's connack says whether it was let in."""
    paho = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id or f"t-{uuid.uuid4().hex[:8]}",
        protocol=mqtt.MQTTv5,
    )
    result = Client(paho)
    if username is not None:
        paho.username_pw_set(username, password)
    if ca_file is not None:
        paho.tls_set(ca_certs=str(ca_file), cert_reqs=ssl.CERT_REQUIRED)

    def on_connect(_c: Any, _u: Any, _flags: Any, reason: mqtt.ReasonCode, _p: Any) -> None:
        if reason.is_failure:
            # Refused: stop here rather than knock again (paho would reconnect for ever).
            paho.disconnect()
        with result.changed:
            result.connack = reason
            result.changed.notify_all()

    def on_publish(_c: Any, _u: Any, mid: int, reason: mqtt.ReasonCode, _p: Any) -> None:
        with result.changed:
            result.pubacks[mid] = reason
            result.changed.notify_all()

    def on_subscribe(_c: Any, _u: Any, mid: int, reasons: list[mqtt.ReasonCode], _p: Any) -> None:
        with result.changed:
            result.subacks[mid] = reasons
            result.changed.notify_all()

    def on_disconnect(_c: Any, _u: Any, _flags: Any, _reason: Any, _p: Any) -> None:
        # A test client never reconnects: a dropped connection is what the test looks at.
        paho.disconnect()
        with result.changed:
            result.disconnects += 1
            result.changed.notify_all()

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        with result.changed:
            result.messages.append((message.topic, bytes(message.payload)))
            result.changed.notify_all()

    paho.on_connect, paho.on_publish = on_connect, on_publish
    paho.on_subscribe, paho.on_message = on_subscribe, on_message
    paho.on_disconnect = on_disconnect
    paho.connect("127.0.0.1", port, keepalive=30)
    paho.loop_start()
    try:
        result._wait(lambda: result.connack, timeout_s)
    finally:
        if result.connack is None or result.connack.is_failure:
            paho.loop_stop()
    return result


def refused(port: int, username: str | None, password: str | None, **kwargs: Any) -> int:
    """Return the CONNACK reason code of a connection that the broker should refuse (0 if not)."""
    client = connect(port, username, password, **kwargs)
    code = client.connack
    assert code is not None
    if not code.is_failure:
        client.close()
    return int(code.value) if code.is_failure else 0


def eventually(check: Any, timeout_s: float = 10.0) -> Any:
    """Poll until check() returns something truthy."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met after {timeout_s}s (last: {result!r})")
        time.sleep(0.05)
