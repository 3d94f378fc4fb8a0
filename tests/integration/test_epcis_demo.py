"""The demo's vein-to-vein COI exports, leg by leg and whole, as valid GS1 EPCIS 2.0."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from coldchain import demo_data
from coldchain.config import Settings, load_settings
from coldchain.domain.roles import Role
from coldchain.services import epcis
from coldchain.services.accounts import Principal
from coldchain.store.engine import make_engine, make_sessions
from coldchain.store.migrate import upgrade
from coldchain.store.models import Shipment
from tests.conftest import ENGINE
from tests.integration.test_cli import coldchain
from tests.support.epcis import assert_valid_epcis

READER = Principal(0, "system:test", "test", Role.AUDITOR, None)


@pytest.fixture(scope="module")
def empty_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty, migrated database on the engine under test (the demo seeds its own world)."""
    if ENGINE != "postgresql":
        url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'demo.db'}"
        upgrade(url)
        yield url
        return
    postgres = request.getfixturevalue("postgres")
    name = f"demo_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    url = postgres.url(name)
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.dispose()


@pytest.fixture(scope="module")
def demo(empty_database_url: str) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    """The demo's data, seeded once as `coldchain demo` seeds it, without its processes.

    The tests only read it (the seeding takes seconds, mostly password hashing).
    """
    settings = load_settings(env={}, overrides={"database_url": empty_database_url})
    engine = make_engine(empty_database_url)
    sessions = make_sessions(engine)
    demo_data.seed(sessions, settings)
    yield settings, sessions
    engine.dispose()


def test_each_leg_of_the_demos_vein_to_vein_coi_exports_valid_epcis(
    demo: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = demo
    base = str(settings["epcis_base_uri"])
    with sessions() as session:
        legs = session.execute(
            select(Shipment.coi, Shipment.leg, Shipment.id, Shipment.status).order_by(Shipment.id)
        ).all()
    cois = {coi for coi, leg, _id, _status in legs if leg == "final_product"} & {
        coi for coi, leg, _id, _status in legs if leg == "apheresis"
    }
    assert len(cois) == 1, legs
    [coi] = cois
    vein_to_vein = [(leg, shipment_id, status) for c, leg, shipment_id, status in legs if c == coi]
    assert [(leg, status) for leg, _id, status in vein_to_vein] == [
        ("apheresis", "received"),
        ("final_product", "received"),
    ]
    for leg, shipment_id, _status in vein_to_vein:
        document = epcis.shipment_epcis(
            sessions=sessions, shipment_id=shipment_id, principal=READER, base_uri=base
        )
        assert_valid_epcis(document)
        events = document["epcisBody"]["eventList"]
        assert [e["bizStep"] for e in events] == [
            "commissioning",
            "shipping",
            "receiving",
            "shipping",
            "receiving",
            "accepting",
        ]
        assert {e["epcList"][0] for e in events} == {f"{base}/coi/{coi}/{leg}"}
        assert events[-1]["sensorElementList"][0]["sensorReport"][0]["type"] == "Temperature"
    whole = epcis.coi_epcis(sessions=sessions, coi=coi, principal=READER, base_uri=base)
    assert_valid_epcis(whole)
    assert len(whole["epcisBody"]["eventList"]) == 12


def test_every_demo_shipment_in_every_state_exports_valid_epcis(
    demo: tuple[Settings, sessionmaker[Session]],
) -> None:
    settings, sessions = demo
    with sessions() as session:
        shipments = session.execute(select(Shipment.id, Shipment.status)).all()
    seen: dict[str, Any] = {}
    for shipment_id, status in shipments:
        document = epcis.shipment_epcis(
            sessions=sessions,
            shipment_id=shipment_id,
            principal=READER,
            base_uri=str(settings["epcis_base_uri"]),
        )
        assert_valid_epcis(document)
        seen[status] = [e["bizStep"] for e in document["epcisBody"]["eventList"]]
    assert seen["quarantined"][-1] == "holding"
    assert seen["rejected"][-1] == "accepting"
    assert seen["cancelled"][-1] == "void_shipping"
    assert seen["created"] == ["commissioning"]


def test_the_command_writes_a_shipments_epcis_document(
    demo: tuple[Settings, sessionmaker[Session]], tmp_path: Path
) -> None:
    settings, sessions = demo
    with sessions() as session:
        shipment_id = session.scalar(
            select(Shipment.id).where(
                Shipment.leg == "final_product", Shipment.status == "received"
            )
        )
    out = tmp_path / "shipment.jsonld"
    done = coldchain(settings.database_url, "export", "epcis", str(shipment_id), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert f"6 EPCIS events of shipment {shipment_id} written to {out}" in done.stderr
    assert_valid_epcis(json.loads(out.read_text(encoding="utf-8")))
    printed = coldchain(settings.database_url, "export", "epcis", str(shipment_id))
    assert printed.returncode == 0, printed.stderr
    assert_valid_epcis(json.loads(printed.stdout))
    missing = coldchain(settings.database_url, "export", "epcis", "999999")
    assert missing.returncode == 1 and "not found" in missing.stderr
