"""Running coldchain: the database schema, the API server, the ingest workers, the demo."""

from __future__ import annotations

import logging
import signal
import sys

import click
from sqlalchemy import inspect

from coldchain.cli.base import Context, log, main, pass_ctx
from coldchain.config import Settings
from coldchain.store.engine import make_engine
from coldchain.store.migrate import upgrade


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
@pass_ctx
def db_upgrade(context: Context, revision: str) -> None:
    """Apply the Alembic migrations."""
    upgrade(context.settings.database_url, revision)
    engine = make_engine(context.settings.database_url)
    tables = len(inspect(engine).get_table_names())
    engine.dispose()
    click.echo(f"database at {revision}: {tables} tables")


@main.command()
@click.option("--host", default=None, help="Default: http.host from the config.")
@click.option("--port", default=None, type=int, help="Default: http.port from the config.")
@click.option("--threads", default=8, show_default=True)
@pass_ctx
def serve(context: Context, host: str | None, port: int | None, threads: int) -> None:
    """Serve the REST API (waitress)."""
    from waitress import serve as waitress_serve

    from coldchain.app import create_app

    settings = context.settings
    check_secret(settings)
    sessions = context.sessions()
    context.record_configuration(sessions)
    host = host or str(settings["http_host"])
    port = port or int(settings["http_port"])
    click.echo(f"coldchain on http://{host}:{port}/ (API under /api/v1)")

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping the server", signum)
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _stop)
    waitress_serve(
        create_app(settings=settings), host=host, port=port, threads=threads, ident="coldchain"
    )


def check_secret(settings: Settings) -> None:
    """Refuse the shipped default secret key outside debug mode."""
    if settings["secret_key"] == "change-me-coldchain-dev-secret" and not settings["http_debug"]:
        log.warning("COLDCHAIN_SECRET_KEY is the shipped default: set your own in production")


@main.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Worker processes sharing the load (default ingest.workers, 1).",
)
@click.option(
    "--worker-index",
    type=click.IntRange(1),
    default=None,
    hidden=True,
    help="Run only worker number N (used by --workers to start its processes).",
)
@pass_ctx
def ingest(context: Context, workers: int | None, worker_index: int | None) -> None:
    """Run the MQTT ingest workers until SIGTERM or Ctrl-C.

    Worker N has the MQTT client id "{ingest.client_id}-N" and a persistent session; all
    of them subscribe through the shared subscription of ingest.readings_topic, so each
    message reaches one of them. The sessions of worker numbers above the ones run are
    drained and ended first (see ingest.retire_scan).
    """
    from coldchain.ingest.supervisor import supervise
    from coldchain.ingest.worker import protocol_version, retire_workers, run_worker

    settings = context.settings
    try:
        protocol = protocol_version(settings["mqtt_protocol"])
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    sessions = context.sessions()
    if worker_index is not None:
        run_worker(settings, sessions, worker_index)
        return
    count = workers if workers is not None else int(settings["ingest_workers"])
    if count > 1 and str(protocol.name) != "MQTTv5":
        raise click.ClickException("several workers need MQTT 5 shared subscriptions")
    context.record_configuration(sessions)
    retire_workers(settings, sessions, count)
    if count == 1:
        run_worker(settings, sessions, 1)
    else:
        supervise(count, verbose=logging.getLogger().isEnabledFor(logging.DEBUG))


@main.command()
@click.option("--port", default=None, type=int, help="HTTP port (default demo.http_port).")
@click.option("--duration", default=None, type=float, help="Stop after this many seconds.")
@pass_ctx
def demo(context: Context, port: int | None, duration: float | None) -> None:
    """Run everything on this machine: broker, worker, API and a simulated fleet."""
    from coldchain.demo import run_demo

    sys.exit(run_demo(context.settings, http_port=port, duration_s=duration))
