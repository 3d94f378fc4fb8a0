"""Rate limits of password attempts: sign-ins and signatures, per client address and per user.

The lockout (five wrong passwords in a row) protects one account; these limits also bound
what one address can try across many accounts, and the argon2 work anyone can make the
server do. Counts live in the storage named by http.rate_limit_storage: "memory://" keeps
them in the server process (each `coldchain serve` process counts on its own).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from flask import Flask, current_app, request
from limits import RateLimitItem, parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from coldchain.api.common import ctx, request_id
from coldchain.api.errors import ApiError
from coldchain.services import accounts

log = logging.getLogger(__name__)

# What is limited, and the settings of its limit per address and per user.
KINDS = {
    "login": ("http_login_rate_per_address", "http_login_rate_per_user"),
    "signature": ("http_signature_rate_per_address", "http_signature_rate_per_user"),
}


@dataclass(frozen=True)
class RateLimits:
    """The limiter of one app and the limits of each kind: (per address, per user)."""

    limiter: MovingWindowRateLimiter
    rules: dict[str, tuple[list[RateLimitItem], list[RateLimitItem]]]


@dataclass(frozen=True)
class Refusal:
    """An attempt over a limit: what was exceeded and when to try again."""

    scope: str
    retry_after_s: int


def _items(text: object) -> list[RateLimitItem]:
    text = str(text or "").strip()
    return parse_many(text) if text else []


def register_rate_limits(app: Flask) -> None:
    """Give the app its limiter, from the http.*_rate_* settings."""
    settings = app.extensions["coldchain"].settings
    storage = storage_from_string(str(settings["http_rate_limit_storage"]))
    rules = {
        kind: (_items(settings[per_address]), _items(settings[per_user]))
        for kind, (per_address, per_user) in KINDS.items()
    }
    app.extensions["coldchain_rate_limits"] = RateLimits(MovingWindowRateLimiter(storage), rules)


def attempt(kind: str, username: str) -> Refusal | None:
    """Count one attempt of `kind` by `username` from this request's address; None if allowed.

    Every attempt counts, right or wrong: a limit on failures alone would let a guesser
    who is sometimes right (a known password on many accounts) go on unhindered.
    The first refusal of each window for a known user is audited; the others are logged.
    """
    limits: RateLimits = current_app.extensions["coldchain_rate_limits"]
    per_address, per_user = limits.rules[kind]
    address = request.remote_addr or "unknown"
    checks = [(item, ("address", address), "address") for item in per_address]
    checks += [(item, ("user", username), "user") for item in per_user]
    for item, key, scope in checks:
        if limits.limiter.hit(item, kind, *key):
            continue
        reset_at = limits.limiter.get_window_stats(item, kind, *key).reset_time
        refusal = Refusal(scope, max(1, math.ceil(reset_at - time.time())))
        log.warning("%s rate limit per %s exceeded: %s from %s", kind, scope, username, address)
        first = type(item)(1, item.multiples)
        if limits.limiter.hit(first, kind, "audited", scope, *key):
            accounts.record_rate_limited(
                sessions=ctx().sessions,
                username=username,
                kind=kind,
                scope=scope,
                address=address,
                limit=str(item),
                request_id=request_id(),
            )
        return refusal
    return None


def limit_signature(username: str) -> None:
    """Refuse a signed API request over the signature limits: 429 with Retry-After."""
    refusal = attempt("signature", username)
    if refusal is not None:
        raise ApiError(
            429,
            "rate-limited",
            f"too many signature attempts from this {refusal.scope}: "
            f"try again in {refusal.retry_after_s} s",
            headers={"Retry-After": str(refusal.retry_after_s)},
        )
