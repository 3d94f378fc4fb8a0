"""Accounts: sites, and users with their roles and API tokens."""

from __future__ import annotations

import secrets

import click

from coldchain.cli.base import Context, _fail, main, pass_ctx
from coldchain.domain.errors import DomainError
from coldchain.domain.roles import SITE_KINDS, Role


@main.group()
def sites() -> None:
    """Collection, manufacturing and treatment sites."""


@sites.command("add")
@click.argument("site")
@click.option("--name", required=True)
@click.option("--kind", required=True, type=click.Choice(SITE_KINDS))
@pass_ctx
def sites_add(context: Context, site: str, name: str, kind: str) -> None:
    """Register a site."""
    from coldchain.services.accounts import add_site

    try:
        add_site(sessions=context.sessions(), site_id=site, name=name, kind=kind)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"site {site} added ({kind})")


@main.group()
def users() -> None:
    """People and their API tokens."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--site", default=None, help="Site of a clinic user.")
@click.option("--password", default=None, help="Generated and printed when not given.")
@click.option("--full-name", default=None, help="Printed name for signatures.")
@pass_ctx
def users_add(
    context: Context,
    name: str,
    role: str,
    site: str | None,
    password: str | None,
    full_name: str | None,
) -> None:
    """Create a user; the new API token is printed alone on the last line."""
    from coldchain.services.accounts import add_user

    generated = password is None
    password = password or secrets.token_urlsafe(12)
    try:
        _user, token = add_user(
            sessions=context.sessions(),
            username=name,
            role=role,
            site_id=site,
            password=password,
            full_name=full_name,
        )
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"user {name} added ({role}{', site ' + site if site else ''})")
    if generated:
        click.echo(f"password: {password}")
    click.echo(token)


@users.command("set-role")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice([r.value for r in Role]))
@click.option("--site", default=None, help="Site of a clinic user.")
@click.option("--reason", required=True, help="Why the role changes (audited).")
@pass_ctx
def users_set_role(context: Context, name: str, role: str, site: str | None, reason: str) -> None:
    """Change a user's role."""
    from coldchain.services.accounts import set_role

    try:
        set_role(sessions=context.sessions(), username=name, role=role, site_id=site, reason=reason)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"user {name} is now {role}{', site ' + site if site else ''}")


@users.command("unlock")
@click.argument("name")
@click.option("--reason", required=True, help="Why the account is unlocked (audited).")
@pass_ctx
def users_unlock(context: Context, name: str, reason: str) -> None:
    """Unlock a user locked by five wrong signature passwords in a row."""
    from coldchain.services.accounts import unlock_user

    try:
        unlock_user(sessions=context.sessions(), username=name, reason=reason)
    except DomainError as exc:
        raise _fail(exc) from exc
    click.echo(f"user {name} unlocked")
