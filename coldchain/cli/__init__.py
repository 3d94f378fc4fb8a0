"""The `coldchain` command.

`main` is the root click group (coldchain/cli/base.py, with the settings, sessions and error
handling its subcommands share); each module here adds the subcommands of one job to it when
imported: accounts (sites, users), loggers (loggers, broker accounts), runtime (db, serve,
ingest, demo), audit, reports (report, export) and alerts.
"""

from coldchain.cli import accounts, alerts, audit, loggers, reports, runtime  # noqa: F401
from coldchain.cli.audit import read_export
from coldchain.cli.base import Context, ensure_schema, main, pass_ctx
from coldchain.cli.runtime import check_secret

__all__ = ["Context", "check_secret", "ensure_schema", "main", "pass_ctx", "read_export"]
