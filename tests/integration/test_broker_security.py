"""Broker accounts on a real Mosquitto run from config/mosquitto-secure.conf.

The password and ACL files are the ones `coldchain loggers provision` and `coldchain broker
account` write; the hashes are made in Python, so every connection here proves that
Mosquitto accepts them.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from coldchain.services.broker_accounts import (
    BrokerFiles,
    check_password,
    issue_backend_account,
    parse_password_file,
    provision_logger,
)
from coldchain.store.models import AuditEvent, Reading
from tests.support.processes import ROOT, ColdchainProcess
from tests.support.secure_broker import (
    SECURE_CONF,
    SecureMosquitto,
    connect,
    eventually,
    make_certificates,
    refused,
)

BACKEND = "coldchain-backend"
NOT_AUTHORIZED = 0x87
READINGS = "coldchain/v1/loggers/{}/readings"
ACK = "coldchain/v1/loggers/{}/ack"


@dataclass
class Secured:
    """A running secured broker, its files, and the passwords issued for it."""

    broker: SecureMosquitto
    files: BrokerFiles
    passwords: dict[str, str]
    database_url: str

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `coldchain ...` on this test's database and broker files."""
        env = {
            **os.environ,
            "COLDCHAIN_DATABASE_URL": self.database_url,
            "COLDCHAIN_BROKER_PASSWORD_FILE": str(self.files.password_file),
            "COLDCHAIN_BROKER_ACL_FILE": str(self.files.acl_file),
            "COLDCHAIN_BROKER_PID_FILE": str(self.broker.pid_file),
        }
        return subprocess.run(
            [sys.executable, "-m", "coldchain", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def secured(
    tmp_path: Path, certs: Path, sessions: sessionmaker[Session], database_url: str
) -> Iterator[Secured]:
    """The backend account and loggers L-1, L-2 provisioned, then the broker started."""
    files = BrokerFiles(tmp_path / "broker" / "passwd", tmp_path / "broker" / "acl")
    passwords = {
        BACKEND: issue_backend_account(sessions=sessions, files=files, username=BACKEND).password
    }
    for logger_id in ("L-1", "L-2"):
        issued = provision_logger(sessions=sessions, files=files, logger_id=logger_id)
        passwords[logger_id] = issued.password
    broker = SecureMosquitto(tmp_path, files, certs).start()
    yield Secured(broker, files, passwords, database_url)
    broker.stop()


def test_a_logger_publishes_its_own_readings_and_is_refused_as_another_logger(
    secured: Secured,
) -> None:
    port, pw = secured.broker.port, secured.passwords
    backend = connect(port, BACKEND, pw[BACKEND])
    backend.subscribe(
        "$share/coldchain-ingest/coldchain/v1/loggers/+/readings", "coldchain/v1/loggers/#"
    )
    logger = connect(port, "L-1", pw["L-1"], client_id="L-1")
    try:
        assert logger.publish(READINGS.format("L-1"), b"own") == 0
        assert logger.publish("coldchain/v1/loggers/L-1/status", b"online") == 0
        for topic in (
            READINGS.format("L-2"),
            "coldchain/v1/loggers/L-2/status",
            ACK.format("L-1"),
            "coldchain/v1/alerts/excursions",
        ):
            forger = connect(port, "L-1", pw["L-1"])
            try:
                assert forger.publish(topic, b"forged") == NOT_AUTHORIZED, topic
                # Mosquitto 2.0 also closes the connection of a client it refused a PUBLISH.
                forger.wait_disconnected()
            finally:
                forger.close()
        # The sentinel comes after the refused messages: once it is here, they never will be.
        assert logger.publish(READINGS.format("L-1"), b"sentinel") == 0
        backend.wait_for(READINGS.format("L-1"), b"sentinel")
        received = backend.received()
        # Once through the shared subscription, once through the plain one.
        assert received.count((READINGS.format("L-1"), b"own")) == 2
        assert ("coldchain/v1/loggers/L-1/status", b"online") in received
        assert not [message for message in received if message[1] == b"forged"]
        assert logger.disconnects == 0
    finally:
        logger.close()
        backend.close()


def test_a_logger_cannot_read_another_loggers_acks(secured: Secured) -> None:
    port, pw = secured.broker.port, secured.passwords
    snoop = connect(port, "L-1", pw["L-1"])
    owner = connect(port, "L-2", pw["L-2"])
    backend = connect(port, BACKEND, pw[BACKEND])
    try:
        # Mosquitto 2.0 grants every SUBSCRIBE and checks the ACL on each message it would
        # deliver: what matters is that nothing of another logger's ever arrives.
        snoop.subscribe(
            ACK.format("L-2"),
            "coldchain/v1/loggers/+/ack",
            "coldchain/v1/#",
            "$share/snoop/coldchain/v1/loggers/+/readings",
        )
        owner.subscribe(ACK.format("L-2"))
        assert owner.publish(READINGS.format("L-2"), b"reading of L-2") == 0
        assert backend.publish(ACK.format("L-2"), b"for L-2") == 0
        assert backend.publish(ACK.format("L-1"), b"for L-1") == 0
        owner.wait_for(ACK.format("L-2"), b"for L-2")
        snoop.wait_for(ACK.format("L-1"), b"for L-1")
        assert {topic for topic, _ in snoop.received()} == {ACK.format("L-1")}
        # Nor may the backend read the acks: it only writes them.
        backend.subscribe(ACK.format("L-2"))
        assert backend.publish(ACK.format("L-2"), b"again") == 0
        owner.wait_for(ACK.format("L-2"), b"again")
        assert backend.received() == []
    finally:
        for client in (snoop, owner, backend):
            client.close()


def test_wrong_passwords_unknown_users_and_anonymous_clients_are_refused_at_connect(
    secured: Secured,
) -> None:
    port, tls_port, pw = secured.broker.port, secured.broker.tls_port, secured.passwords
    ca = secured.broker.certs / "ca.crt"
    for username, password in (
        ("L-1", pw["L-2"]),
        ("L-1", ""),
        ("L-9", pw["L-1"]),
        (BACKEND, pw["L-1"]),
        (None, None),
    ):
        assert refused(port, username, password) in (0x86, NOT_AUTHORIZED), username
        assert refused(tls_port, username, password, ca_file=ca) in (0x86, NOT_AUTHORIZED)
    assert refused(tls_port, "L-1", pw["L-1"], ca_file=ca) == 0


def test_the_tls_listener_proves_its_name_with_the_test_ca_and_no_other(
    secured: Secured, tmp_path: Path
) -> None:
    other = make_certificates(tmp_path / "other-ca")

    def handshake(ca_file: Path, host: str) -> str:
        context = ssl.create_default_context(cafile=str(ca_file))
        with socket.create_connection(("127.0.0.1", secured.broker.tls_port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                return str(tls.version())

    assert handshake(secured.broker.certs / "ca.crt", "127.0.0.1").startswith("TLSv1.")
    assert handshake(secured.broker.certs / "ca.crt", "localhost").startswith("TLSv1.")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(other / "ca.crt", "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(secured.broker.certs / "ca.crt", "broker.example")


def test_provisioning_again_rotates_the_password_and_the_old_one_fails_after_sighup(
    secured: Secured, sessions: sessionmaker[Session]
) -> None:
    port, old = secured.broker.port, secured.passwords["L-1"]
    done = secured.cli("loggers", "provision", "L-1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    new = lines[-1]
    assert new != old and "rotated" in done.stdout and "SIGHUP" in lines[-2]
    assert check_password(new, parse_password_file(secured.files.password_file.read_text())["L-1"])
    eventually(lambda: refused(port, "L-1", old) == NOT_AUTHORIZED)
    assert refused(port, "L-1", new) == 0
    assert refused(port, "L-2", secured.passwords["L-2"]) == 0

    revoked = secured.cli("loggers", "provision", "L-2", "--revoke")
    assert revoked.returncode == 0, revoked.stderr
    eventually(lambda: refused(port, "L-2", secured.passwords["L-2"]) == NOT_AUTHORIZED)
    assert "L-2" not in parse_password_file(secured.files.password_file.read_text())

    with sessions() as session:
        actions = session.scalars(
            select(AuditEvent.action).where(AuditEvent.entity_id.in_(["L-1", "L-2"]))
        ).all()
    assert actions.count("logger.broker_account_issued") == 2
    assert "logger.broker_password_rotated" in actions
    assert "logger.broker_account_revoked" in actions
    assert not [event for event in actions if new in event or old in event]


def test_provision_registers_an_unknown_logger_and_prints_only_the_password_last(
    secured: Secured,
) -> None:
    done = secured.cli("loggers", "provision", "NEW-7", "--model", "T1")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "logger NEW-7 added"
    password = lines[-1]
    assert " " not in password and len(password) == 32
    assert refused(secured.broker.port, "NEW-7", password) == 0
    mode = secured.files.password_file.stat().st_mode & 0o777
    assert mode == 0o600
    # The backend's name is not a logger's, and a bad id never reaches the files.
    clash = secured.cli("loggers", "provision", BACKEND)
    assert clash.returncode != 0 and "backend account" in clash.stderr
    bad = secured.cli("loggers", "provision", "a:b")
    assert bad.returncode != 0 and "logger_id" in bad.stderr and "Traceback" not in bad.stderr
    assert set(parse_password_file(secured.files.password_file.read_text())) == {
        BACKEND,
        "L-1",
        "L-2",
        "NEW-7",
    }


def test_the_shipped_secure_config_keeps_every_setting_of_the_plain_one() -> None:
    def settings(path: Path) -> list[str]:
        lines = (line.strip() for line in path.read_text().splitlines())
        return [line for line in lines if line and not line.startswith("#")]

    secure = settings(SECURE_CONF)
    assert [
        line for line in settings(ROOT / "config" / "mosquitto.conf") if line not in secure
    ] == []
    assert "allow_anonymous false" in secure


@pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="no mosquitto_passwd")
def test_hashes_of_mosquitto_passwd_and_ours_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(path), "L-1", "s3cret"], check=True, timeout=10
    )
    encoded = parse_password_file(path.read_text())["L-1"]
    assert encoded.startswith("$7$101$")
    assert check_password("s3cret", encoded) and not check_password("s3cre", encoded)


def _readings(sessions: sessionmaker[Session], logger_id: str) -> int:
    with sessions() as session:
        count = session.scalar(
            select(func.count()).select_from(Reading).where(Reading.logger_id == logger_id)
        )
    return int(count or 0)


@pytest.mark.e2e
@pytest.mark.parametrize("tls", [True, False], ids=["mqtts", "mqtt"])
def test_the_backend_account_ingests_and_its_ack_helper_acks_the_logger(
    secured: Secured, sessions: sessionmaker[Session], tmp_path: Path, tls: bool
) -> None:
    broker, pw = secured.broker, secured.passwords
    ca = broker.certs / "ca.crt"
    worker = ColdchainProcess(
        ["ingest"],
        {
            "COLDCHAIN_DATABASE_URL": secured.database_url,
            "COLDCHAIN_MQTT_URL": broker.url(BACKEND, pw[BACKEND], tls=tls),
            "COLDCHAIN_MQTT_CA_FILE": str(ca) if tls else "",
            "COLDCHAIN_INGEST_SESSION_EXPIRY_S": "60",
            "COLDCHAIN_INGEST_BATCH_MAX_MS": "20",
        },
        tmp_path / "worker.log",
    ).start()
    logger = (
        connect(broker.tls_port, "L-1", pw["L-1"], ca_file=ca)
        if tls
        else connect(broker.port, "L-1", pw["L-1"])
    )
    try:
        worker.wait_for_log("connected to")
        logger.subscribe(ACK.format("L-1"))
        t0 = round(time.time()) - 60
        pack = [
            {"bn": "urn:dev:logger:L-1:", "n": "temp", "u": "Cel", "t": t0, "v": -190.5},
            {"n": "temp", "u": "Cel", "t": t0 + 30, "v": -190.0},
        ]
        assert logger.publish(READINGS.format("L-1"), json.dumps(pack)) == 0
        # The ack helper, a process of its own, publishes over TLS with the backend account.
        eventually(lambda: logger.received(), timeout_s=20)
        topic, body = logger.received()[0]
        assert topic == ACK.format("L-1")
        assert json.loads(body)["count"] == 2
        assert _readings(sessions, "L-1") == 2
        assert "refused" not in worker.log()
    finally:
        logger.close()
        worker.stop()


@pytest.mark.e2e
def test_simulated_loggers_connect_over_tls_each_with_its_own_password(
    secured: Secured, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    broker, pw = secured.broker, secured.passwords
    ca = broker.certs / "ca.crt"
    worker = ColdchainProcess(
        ["ingest"],
        {
            "COLDCHAIN_DATABASE_URL": secured.database_url,
            "COLDCHAIN_MQTT_URL": broker.url(BACKEND, pw[BACKEND], tls=True),
            "COLDCHAIN_MQTT_CA_FILE": str(ca),
            "COLDCHAIN_INGEST_SESSION_EXPIRY_S": "60",
            "COLDCHAIN_INGEST_BATCH_MAX_MS": "20",
        },
        tmp_path / "worker.log",
    ).start()
    credentials = tmp_path / "credentials.txt"
    credentials.write_text(
        f"# from coldchain loggers provision\nL-1 {pw['L-1']}\nL-2 {pw['L-2']}\n"
    )
    devices = ColdchainProcess(
        [
            "--broker",
            f"mqtts://127.0.0.1:{broker.tls_port}",
            "--ca-file",
            str(ca),
            "--credentials",
            str(credentials),
            "--loggers",
            "L-1,L-2",
            "--interval",
            "0.2",
        ],  # fmt: skip
        {},
        tmp_path / "devices.log",
        module="devices",
    )
    try:
        worker.wait_for_log("connected to")
        devices.start()
        eventually(lambda: _readings(sessions, "L-1") >= 3 and _readings(sessions, "L-2") >= 3, 20)
    finally:
        devices.stop()
        worker.stop()
    assert "connection refused" not in devices.log()
    assert "L-1 connected to" in devices.log() and "L-2 connected to" in devices.log()


def test_rewrites_keep_each_files_owner_and_mode_and_leave_no_temporary_file(
    tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    folder = tmp_path / "broker"
    files = BrokerFiles(folder / "passwd", folder / "acl")
    provision_logger(sessions=sessions, files=files, logger_id="L-1")
    assert oct(files.password_file.stat().st_mode & 0o777) == "0o600"
    assert oct(files.acl_file.stat().st_mode & 0o777) == "0o644"
    # As an operator gives them to Mosquitto's user (Debian: root:mosquitto 0640); a
    # password file made readable by others loses that on the next rewrite.
    files.password_file.chmod(0o644)
    files.acl_file.chmod(0o640)
    if os.geteuid() == 0:
        for path in (files.password_file, files.acl_file):
            os.chown(path, 65534, 65534)
    provision_logger(sessions=sessions, files=files, logger_id="L-2")
    assert oct(files.password_file.stat().st_mode & 0o777) == "0o640"
    assert oct(files.acl_file.stat().st_mode & 0o777) == "0o640"
    if os.geteuid() == 0:
        assert (files.password_file.stat().st_uid, files.acl_file.stat().st_gid) == (65534, 65534)
    assert sorted(p.name for p in folder.iterdir()) == ["acl", "passwd", "passwd.lock"]
    assert set(parse_password_file(files.password_file.read_text())) == {"L-1", "L-2"}
