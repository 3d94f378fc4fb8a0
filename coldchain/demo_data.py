"""The demo's data: sites, users, loggers and shipments in every state of the life cycle."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings
from coldchain.domain.custody import Decision, Disposition
from coldchain.domain.identity import mod37_2_check_character
from coldchain.domain.senml import PackLimits
from coldchain.services import accounts, custody, ingest, shipments
from coldchain.services.signing import SignatureInput
from coldchain.services.timefmt import now_us

SITES = (
    ("COLL-1", "Apheresis Centre North", "apheresis"),
    ("MFG-1", "Cell Manufacturing Plant", "manufacturing"),
    ("TC-1", "University Hospital Treatment Centre", "treatment"),
    ("TC-2", "City Cancer Clinic", "treatment"),
)
USERS = (
    ("admin", "admin", None, "Ada Admin"),
    ("coordinator", "coordinator", None, "Cora Coordinator"),
    ("courier", "courier", None, "Carl Courier"),
    ("courier2", "courier", None, "Cass Air-Courier"),
    ("mfg", "clinic", "MFG-1", "Mo Manufacturing"),
    ("clinic", "clinic", "TC-1", "Dr Clara Clinic"),
    ("qa", "qa", None, "Quinn QA"),
    ("auditor", "auditor", None, "Audrey Auditor"),
)
# (scenario, loggers, monitoring starts this many seconds ago)
FLEET = (
    ("nominal", ("SIM-NOM-1", "SIM-NOM-2"), 60),
    ("excursion", ("SIM-EXC-1",), 60),
    ("signal-loss", ("SIM-LOSS-1",), 1200),
)


def seed(sessions: sessionmaker[Session], settings: Settings) -> dict[str, tuple[str, str]]:
    """Create the demo's sites, users, loggers and shipments; return logins by user."""
    for site_id, name, kind in SITES:
        accounts.add_site(sessions=sessions, site_id=site_id, name=name, kind=kind)
    logins = {}
    for username, role, site, full_name in USERS:
        password = f"{username}-demo-pw"
        _user, token = accounts.add_user(
            sessions=sessions,
            username=username,
            role=role,
            site_id=site,
            password=password,
            full_name=full_name,
        )
        logins[username] = (password, token)
    coordinator = accounts.principal_for_token(sessions=sessions, token=logins["coordinator"][1])
    assert coordinator is not None
    serial = 100
    now = datetime.now(UTC)
    # A spare on the shelf past its calibration: the fleet page shows it, and a new shipment
    # naming it is refused (logger-calibration-overdue). The other loggers of the demo
    # without a date show the "unknown" case.
    accounts.add_logger(
        sessions=sessions,
        logger_id="SPARE-OVERDUE",
        model="SimLogger",
        calibration_due=(now - timedelta(days=3)).date(),
    )
    created: dict[str, dict[str, Any]] = {}
    for scenario, logger_ids, ago_s in FLEET:
        for logger_id in logger_ids:
            accounts.add_logger(
                sessions=sessions,
                logger_id=logger_id,
                model="SimLogger",
                calibration_due=(now + timedelta(days=180)).date(),
            )
            serial += 1
            din = f"W1234{now:%y}{serial:06d}"
            created[logger_id] = shipments.create_shipment(
                sessions=sessions,
                request=shipments.NewShipment(
                    coi=din + mod37_2_check_character(din),
                    profile="LN2_VAPOR",
                    origin_site="MFG-1",
                    destination_site="TC-1",
                    loggers=[logger_id],
                    patient=demo_patient(serial),
                    monitoring_from=now - timedelta(seconds=ago_s),
                    seal_id=f"SEAL-{serial}",
                ),
                creator=coordinator,
                profiles=settings.profiles,
                secret_key=settings.secret_key,
            )
            if scenario == "signal-loss":
                _last_word(sessions, settings, logger_id, now - timedelta(seconds=ago_s - 1))
    LifeCycle(sessions, settings, logins).play(created, serial)
    return logins


class LifeCycle:
    """Move the demo's shipments through custody so that every state of the life cycle shows.

    The live loggers' shipments stay in motion (picked up, in transit, delivered); shipments
    with loggers that no longer report show the rest: created (awaiting pickup), received,
    quarantined, rejected (an excursion QA rejected) and cancelled.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        logins: dict[str, tuple[str, str]],
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.logins = logins

    def who(self, username: str) -> accounts.Principal:
        principal = accounts.principal_for_token(
            sessions=self.sessions, token=self.logins[username][1]
        )
        assert principal is not None
        return principal

    def signature(self, username: str, meaning: str) -> SignatureInput:
        return SignatureInput(password=self.logins[username][0], meaning=meaning)

    def hand(self, username: str, shipment: dict[str, Any], to_party: str) -> dict[str, Any]:
        shipment = shipments.get_shipment(
            sessions=self.sessions, shipment_id=shipment["id"], principal=self.who("coordinator")
        )
        return custody.record_handoff(
            sessions=self.sessions,
            shipment_id=shipment["id"],
            principal=self.who(username),
            handoff=custody.NewHandoff(
                version=shipment["version"],
                from_party=shipment["holder"],
                to_party=to_party,
                location=f"dock of {shipment['holder']}",
                seal_id=shipment["seal_id"],
                condition="intact",
                signature=self.signature(username, f"Handed over to {to_party}"),
            ),
        )

    def receive(
        self, shipment: dict[str, Any], decision: Decision, reason: str | None, user: str
    ) -> dict[str, Any]:
        current = shipments.get_shipment(
            sessions=self.sessions, shipment_id=shipment["id"], principal=self.who(user)
        )
        return custody.record_receipt(
            sessions=self.sessions,
            shipment_id=shipment["id"],
            principal=self.who(user),
            receipt=custody.NewReceipt(
                version=current["version"],
                coi_scan=current["coi"],
                patient=DEMO_PATIENTS[current["coi"]],
                seal_id=current["seal_id"],
                decision=decision,
                reason=reason,
                signature=self.signature(user, f"Receipt: {decision.value}"),
            ),
            secret_key=self.settings.secret_key,
        )

    def new(
        self, serial: int, logger_id: str, origin: str, destination: str, ago_s: float
    ) -> dict[str, Any]:
        accounts.add_logger(sessions=self.sessions, logger_id=logger_id, model="SimLogger")
        now = datetime.now(UTC)
        din = f"W1234{now:%y}{serial:06d}"
        coi = din + mod37_2_check_character(din)
        DEMO_PATIENTS[coi] = demo_patient(serial)
        return shipments.create_shipment(
            sessions=self.sessions,
            request=shipments.NewShipment(
                coi=coi,
                profile="LN2_VAPOR",
                origin_site=origin,
                destination_site=destination,
                loggers=[logger_id],
                patient=DEMO_PATIENTS[coi],
                monitoring_from=now - timedelta(seconds=ago_s),
                seal_id=f"SEAL-{serial}",
            ),
            creator=self.who("coordinator"),
            profiles=self.settings.profiles,
            secret_key=self.settings.secret_key,
        )

    def next_leg(
        self, previous: dict[str, Any], logger_id: str, destination: str, ago_s: float
    ) -> dict[str, Any]:
        """Create the next leg of a COI: from the previous leg's destination, same patient."""
        accounts.add_logger(sessions=self.sessions, logger_id=logger_id, model="SimLogger")
        return shipments.create_shipment(
            sessions=self.sessions,
            request=shipments.NewShipment(
                coi=previous["coi"],
                profile="LN2_VAPOR",
                origin_site=previous["destination_site"],
                destination_site=destination,
                loggers=[logger_id],
                patient=DEMO_PATIENTS[previous["coi"]],
                monitoring_from=datetime.now(UTC) - timedelta(seconds=ago_s),
                seal_id=f"{previous['seal_id']}-FP",
            ),
            creator=self.who("coordinator"),
            profiles=self.settings.profiles,
            secret_key=self.settings.secret_key,
        )

    def history(self, logger_id: str, ago_s: float, warm: bool = False) -> None:
        """Store a journey's readings, one a minute until a minute ago."""
        start = time.time() - ago_s
        minutes = int(ago_s // 60)
        records: list[dict[str, Any]] = [
            {
                "bn": f"urn:dev:logger:{logger_id}:",
                "bu": "Cel",
                "bt": start,
                "n": "temp",
                "t": 0,
                "v": -191.0,
            }
        ]
        for i in range(1, minutes):
            hot = warm and minutes // 3 <= i < minutes // 3 + 20
            records.append(
                {"n": "temp", "t": 60 * i, "v": -135.0 if hot else -190.0 + (i % 5) / 10}
            )
        _store(self.sessions, self.settings, logger_id, records)

    def play(self, live: dict[str, dict[str, Any]], serial: int) -> None:
        for shipment in live.values():
            DEMO_PATIENTS[shipment["coi"]] = demo_patient(int(shipment["coi"][7:13]))
        self.hand("courier", live["SIM-EXC-1"], "courier")
        self.hand("courier", live["SIM-LOSS-1"], "courier")
        moving = self.hand("courier", live["SIM-NOM-1"], "courier")
        self.hand("courier", moving, "courier2")
        arrived = self.hand("courier", live["SIM-NOM-2"], "courier")
        self.hand("courier", arrived, "TC-1")
        # Awaiting pickup: packed, monitored from the pickup time in an hour.
        self.new(serial + 1, "SIM-HIST-1", "MFG-1", "TC-1", -3600)
        # An apheresis leg received at manufacturing.
        leg = self.new(serial + 2, "SIM-HIST-2", "COLL-1", "MFG-1", 3 * 3600)
        self.history("SIM-HIST-2", 3 * 3600)
        leg = self.hand("courier", leg, "courier")
        leg = self.hand("courier", leg, "MFG-1")
        self.receive(leg, Decision.ACCEPT, None, "mfg")
        # Vein to vein: the same patient's final product, from manufacturing to the clinic.
        final = self.next_leg(leg, "SIM-HIST-6", "TC-1", 3600)
        self.history("SIM-HIST-6", 3600)
        final = self.hand("courier", final, "courier")
        final = self.hand("courier", final, "TC-1")
        self.receive(final, Decision.ACCEPT, None, "clinic")
        # Quarantined at the clinic with an excursion awaiting QA.
        held = self.new(serial + 3, "SIM-HIST-3", "MFG-1", "TC-1", 2 * 3600)
        held = self.hand("courier", held, "courier")
        held = self.hand("courier", held, "TC-1")
        self.history("SIM-HIST-3", 2 * 3600, warm=True)
        self.receive(held, Decision.QUARANTINE, "warm-up during transport; awaiting QA", "clinic")
        # Rejected: QA found the excursion unacceptable.
        lost = self.new(serial + 4, "SIM-HIST-4", "MFG-1", "TC-1", 2 * 3600)
        lost = self.hand("courier", lost, "courier")
        lost = self.hand("courier", lost, "TC-1")
        self.history("SIM-HIST-4", 2 * 3600, warm=True)
        current = shipments.get_shipment(
            sessions=self.sessions, shipment_id=lost["id"], principal=self.who("qa")
        )
        for excursion in current["excursions"]:
            custody.record_disposition(
                sessions=self.sessions,
                excursion_id=excursion["id"],
                principal=self.who("qa"),
                disposition=custody.NewDisposition(
                    version=excursion["version"],
                    decision=Disposition.PRODUCT_REJECTED,
                    reason="20 minutes at -135 C exceeds the product's stability data",
                    signature=self.signature("qa", "QA disposition"),
                ),
                profiles=self.settings.profiles,
            )
        self.receive(lost, Decision.REJECT, "QA rejected the product", "clinic")
        # Cancelled before pickup.
        off = self.new(serial + 5, "SIM-HIST-5", "MFG-1", "TC-2", 600)
        custody.cancel_shipment(
            sessions=self.sessions,
            shipment_id=off["id"],
            principal=self.who("coordinator"),
            version=off["version"],
            reason="infusion postponed by the treating physician",
        )


# Patient identifiers of the demo's shipments, by COI, as a clinic would re-enter them.
DEMO_PATIENTS: dict[str, dict[str, str]] = {}


def demo_patient(serial: int) -> dict[str, str]:
    """The made-up patient of a demo shipment, as a clinic re-enters it at receipt."""
    return {"mrn": f"MRN-{serial}", "name": f"Patient {serial}", "dob": "1970-01-01"}


def _last_word(
    sessions: sessionmaker[Session], settings: Settings, logger_id: str, at: datetime
) -> None:
    """Store one old reading, as if the logger reported once and then lost its signal.

    The demo then shows a SIGNAL_LOSS at once, and its recovery when the simulated
    logger's store-and-forward backfill arrives.
    """
    record = {"bn": f"urn:dev:logger:{logger_id}:", "n": "temp", "u": "Cel"}
    _store(sessions, settings, logger_id, [{**record, "t": at.timestamp(), "v": -190.0}])


def _store(
    sessions: sessionmaker[Session],
    settings: Settings,
    logger_id: str,
    records: list[dict[str, Any]],
) -> None:
    """Store a SenML pack through the ingest service, as the worker would."""
    topic = f"coldchain/v1/loggers/{logger_id}/readings"
    ingest.store_batch(
        sessions=sessions,
        messages=[ingest.Incoming(topic, json.dumps(records).encode(), now_us())],
        profiles=settings.profiles,
        limits=PackLimits(),
        known=ingest.KnownLoggers(),
        now_us=now_us(),
    )
