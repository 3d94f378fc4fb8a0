"""How the worker cuts its received messages into batches: by count, by bytes, in order."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from sqlalchemy.orm import Session, sessionmaker

from coldchain.config import Settings, load_settings
from coldchain.ingest.worker import Worker


def received(worker: Worker, sizes: list[int]) -> None:
    """Hand the worker messages of these payload sizes, as paho's on_message does."""
    first = len(worker.pending) + 1
    for mid, size in enumerate(sizes, start=first):
        message = mqtt.MQTTMessage(mid=mid, topic=b"coldchain/v1/loggers/L-1/readings")
        message.payload = b"x" * size
        message.qos = 1
        worker._on_message(worker.client, None, message)


def make_worker(settings: Settings, sessions: sessionmaker[Session], **limits: str) -> Worker:
    env = {f"COLDCHAIN_INGEST_{key.upper()}": value for key, value in limits.items()}
    env["COLDCHAIN_DATABASE_URL"] = settings.database_url
    return Worker(load_settings(env=env), sessions)


def test_a_batch_is_cut_at_the_message_count(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    worker = make_worker(settings, sessions, batch_max_messages="3", batch_max_bytes="1000")
    received(worker, [10, 10])
    assert not worker._batch_full()
    received(worker, [10, 10])
    assert worker._batch_full()
    assert [d.mid for d in worker._take_batch()] == [1, 2, 3]
    assert [d.mid for d in worker.pending] == [4]
    assert worker.pending_bytes == 10


def test_a_batch_is_cut_at_the_payload_bytes(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    worker = make_worker(settings, sessions, batch_max_messages="100", batch_max_bytes="100")
    received(worker, [40, 40])
    assert not worker._batch_full()
    received(worker, [40, 5])
    assert worker._batch_full()
    # 40 + 40 fit; a third would pass 100 bytes: it waits for the next batch.
    assert [d.mid for d in worker._take_batch()] == [1, 2]
    assert worker.pending_bytes == 45
    assert [d.mid for d in worker._take_batch()] == [3, 4]
    assert worker.pending == [] and worker.pending_bytes == 0


def test_a_message_larger_than_the_byte_limit_is_a_batch_of_its_own(
    settings: Settings, sessions: sessionmaker[Session]
) -> None:
    worker = make_worker(settings, sessions, batch_max_messages="100", batch_max_bytes="100")
    received(worker, [500, 10])
    assert [d.mid for d in worker._take_batch()] == [1]
    assert [d.mid for d in worker._take_batch()] == [2]
    assert worker.pending_bytes == 0
