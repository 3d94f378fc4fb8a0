"""The root `coldchain` group and what its subcommands share: settings, sessions, errors."""

from __future__ import annotations

import logging
import time
from typing import Any

import click
from sqlalchemy.exc import OperationalError

from coldchain.config import ConfigError, Settings, load_settings
from coldchain.domain.errors import DomainError
from coldchain.store.engine import make_engine, make_sessions
from coldchain.store.migrate import upgrade

# Named for the package, as when the command line was one module: the log lines keep their name.
log = logging.getLogger("coldchain.cli")


class Context:
    """Lazily built settings and sessions shared by the subcommands."""

    def __init__(self) -> None:
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except (ConfigError, DomainError) as exc:
                raise click.ClickException(str(exc)) from exc
        return self._settings

    def sessions(self) -> Any:
        """Return a session factory on a schema that is up to date."""
        ensure_schema(self.settings.database_url)
        return make_sessions(make_engine(self.settings.database_url))

    def record_configuration(self, sessions: Any) -> None:
        """Audit the configuration this process runs with, if it changed since last time."""
        from coldchain.services.audit import record_configuration, settings_snapshot

        snapshot = settings_snapshot(self.settings.values, self.settings.profiles)
        if record_configuration(sessions, snapshot):
            log.info("configuration changed since the last start: recorded in the audit trail")


def ensure_schema(url: str) -> None:
    """Create or upgrade the schema, tolerating another process doing the same at once."""
    for attempt in range(5):
        try:
            upgrade(url)
            return
        except OperationalError as exc:
            # Two processes started together on a new SQLite file race to create the
            # tables; the loser finds them made and succeeds on the next try.
            if attempt == 4:
                raise click.ClickException(f"cannot prepare the database: {exc.orig}") from exc
            time.sleep(0.5 + attempt)


pass_ctx = click.make_pass_decorator(Context, ensure=True)


def _fail(exc: DomainError) -> click.ClickException:
    field = f" ({exc.field})" if exc.field else ""
    return click.ClickException(f"{exc.message}{field}")


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log at DEBUG level.")
@click.pass_context
def main(click_ctx: click.Context, verbose: bool) -> None:
    """coldchain: cold-chain tracking for autologous cell therapy."""
    context = click_ctx.ensure_object(Context)
    level = "DEBUG" if verbose else None
    try:
        level = level or str(context.settings.get("log_level", "INFO")).upper()
    except click.ClickException:
        level = "INFO"
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
