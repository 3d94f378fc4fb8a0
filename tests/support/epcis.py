"""GS1's EPCIS 2.0 JSON schema, read from tests/data/epcis/, as a validator (no network)."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft7Validator, FormatChecker

DATA = Path(__file__).resolve().parent.parent / "data" / "epcis"
SCHEMA = DATA / "EPCIS-JSON-Schema.json"
EXAMPLES = sorted(DATA.glob("SensorDataExample*.jsonld"))

# RFC 3986: an absolute URI is a scheme, a colon, then only unreserved, reserved and
# percent-encoded characters. jsonschema checks "uri" only with an optional package that is
# not installed, so the check is made here: a space or a bare "%" in an id must fail.
_URI = re.compile(
    r"^[A-Za-z][A-Za-z0-9+.\-]*:(?:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=]|%[0-9A-Fa-f]{2})*$"
)


def _checker() -> FormatChecker:
    checker = FormatChecker()  # date-time through rfc3339-validator, and the other formats

    @checker.checks("uri")
    def is_uri(value: object) -> bool:
        return not isinstance(value, str) or _URI.match(value) is not None

    return checker


@cache
def validator() -> Draft7Validator:
    """A validator of GS1's schema, of the draft it declares, with format checks."""
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    # The schema declares draft-07; its $refs are all "#/definitions/...", inside the file.
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert jsonschema.validators.validator_for(schema) is Draft7Validator
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema, format_checker=_checker())


def schema_errors(document: Any) -> list[str]:
    """Every way a document breaks GS1's schema (empty if it is valid)."""
    return [
        f"{'/'.join(str(p) for p in error.absolute_path)}: {error.message}"
        for error in validator().iter_errors(document)
    ]


def assert_valid_epcis(document: Any) -> None:
    """Fail, naming each problem, unless the document is valid against GS1's schema."""
    errors = schema_errors(document)
    assert not errors, "\n".join(errors[:20])
