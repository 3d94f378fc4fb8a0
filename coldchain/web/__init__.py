"""The web pages: server-rendered Jinja templates over the same services as the API."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Blueprint, Flask, g, redirect, request, session, url_for
from flask_wtf.csrf import CSRFProtect

from coldchain.domain.roles import Role
from coldchain.services.accounts import Principal, principal_for_user_id

F = TypeVar("F", bound=Callable[..., Any])

bp = Blueprint(
    "web", __name__, template_folder="templates", static_folder="static", static_url_path="/assets"
)
csrf = CSRFProtect()


def register_web(app: Flask, api_blueprints: list[Blueprint]) -> None:
    """Install the pages, sessions and CSRF protection (the bearer-token API is exempt)."""
    settings = app.extensions["coldchain"].settings
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=bool(settings["http_cookie_secure"]),
        SESSION_COOKIE_NAME="coldchain_session",
        PERMANENT_SESSION_LIFETIME=int(settings["http_session_minutes"]) * 60,
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the session
    )
    csrf.init_app(app)
    for blueprint in api_blueprints:
        # The API authenticates each request with a bearer token, never a cookie, so a
        # forged cross-site request carries no credentials: CSRF does not apply.
        csrf.exempt(blueprint)
    from coldchain.web import pages, scorecards  # noqa: F401  (registers the routes)

    app.register_blueprint(bp)


def current_user() -> Principal:
    """The signed-in user of this request."""
    return cast(Principal, g.user)


def signed_in(*roles: Role) -> Callable[[F], F]:
    """Require a signed-in user (and one of the roles, when given); else go to sign-in."""
    allowed = frozenset(roles)

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from flask import abort, current_app

            user_id = session.get("user_id")
            user = (
                principal_for_user_id(
                    sessions=current_app.extensions["coldchain"].sessions, user_id=int(user_id)
                )
                if user_id is not None
                else None
            )
            if user is None:
                session.clear()
                return redirect(url_for("web.login", next=request.full_path))
            if allowed and user.role not in allowed:
                abort(403)
            g.user = user
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate
