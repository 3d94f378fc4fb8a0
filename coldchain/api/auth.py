"""Bearer-token authentication and role checks for the API."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import current_app, g, request

from coldchain.api.errors import ApiError
from coldchain.domain.roles import Role
from coldchain.services.accounts import Principal, principal_for_token

F = TypeVar("F", bound=Callable[..., Any])

ALL_ROLES = frozenset(Role)


def current_principal() -> Principal:
    """Return the authenticated caller of this request."""
    return cast(Principal, g.principal)


def requires(*roles: Role) -> Callable[[F], F]:
    """Authenticate the bearer token and allow only the given roles (all when none given)."""
    allowed = frozenset(roles) or ALL_ROLES

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            header = request.headers.get("Authorization", "")
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(401, "unauthenticated", "send Authorization: Bearer <token>")
            principal = principal_for_token(
                sessions=current_app.extensions["coldchain"].sessions, token=token.strip()
            )
            if principal is None:
                raise ApiError(401, "unauthenticated", "unknown, revoked or locked token")
            if principal.role not in allowed:
                raise ApiError(403, "forbidden", f"role {principal.role} may not do this")
            g.principal = principal
            return view(*args, **kwargs)

        wrapper.__openapi_roles__ = sorted(r.value for r in allowed)  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate
