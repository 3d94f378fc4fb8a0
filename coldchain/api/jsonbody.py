"""Read a request's JSON body once, refusing what no coldchain body has a use for.

Every refusal is a 4xx in the contract's shape, never a 500: a body that is not sent as JSON
(415), that is not UTF-8 JSON, nests deeper than any coldchain body does, or names a key
twice (400). The size is capped before this by Flask's MAX_CONTENT_LENGTH (413).
"""

from __future__ import annotations

import json
from typing import Any

from flask import g, request

from coldchain.api.errors import ApiError

# The deepest coldchain body is three levels (body -> signature -> password); this leaves
# room while keeping every walk of a body far from Python's recursion limit.
MAX_DEPTH = 32


def _refuse_constant(literal: str) -> Any:
    raise ApiError(400, "invalid-json", f"{literal} is not a JSON number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A key given twice is refused rather than "last wins": two values for the COI or the
    # signature's meaning of one record are a client bug that must not pass silently.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ApiError(400, "duplicate-key", f"{key}: the key is given twice", key)
        result[key] = value
    return result


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_constant=_refuse_constant)


def _too_deep(value: Any) -> bool:
    """Tell whether a parsed value nests deeper than MAX_DEPTH (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_DEPTH:
            return True
        if isinstance(item, dict):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
    return False


def _load() -> Any:
    if not request.is_json:
        raise ApiError(
            415,
            "unsupported-media-type",
            "send the body as JSON, with Content-Type: application/json",
        )
    raw = request.get_data(cache=True)  # over MAX_CONTENT_LENGTH: 413
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid-json", "the body is not UTF-8 text") from None
    try:
        value = _DECODER.decode(text)
    except RecursionError:
        raise ApiError(400, "invalid-json", "the JSON nests too deeply") from None
    except json.JSONDecodeError as exc:
        raise ApiError(400, "invalid-json", f"the body is not JSON: {exc}") from None
    except ValueError:
        # Python refuses to convert integers of more than 4300 digits (CVE-2020-10735).
        raise ApiError(400, "invalid-json", "the JSON has a number with too many digits") from None
    if _too_deep(value):
        raise ApiError(400, "invalid-json", f"the JSON nests deeper than {MAX_DEPTH} levels")
    return value


def request_json() -> Any:
    """Return the request's parsed JSON body, or raise the ApiError that refuses it."""
    if "json_body" not in g:
        try:
            g.json_body = (_load(), None)
        except ApiError as exc:
            g.json_body = (None, exc)
    value, error = g.json_body
    if error is not None:
        raise error
    return value
