"""Chain of identity: the COI (ISBT 128 DIN + ISO 7064 Mod 37-2) and keyed patient hashes."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass

from coldchain.domain.errors import ValidationError

COI_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ*"
_VALUES = {char: value for value, char in enumerate(COI_ALPHABET)}

# DIN: facility code (a letter, then four letters or digits), 2-digit year, 6-digit serial;
# then the check character. The contract says "one letter and four digits", but ISBT 128
# facility codes and the reference vector ABCDE27000069 also use letters.
_COI_RE = re.compile(r"([A-Z][A-Z0-9]{4})([0-9]{2})([0-9]{6})([0-9A-Z*])", re.ASCII)


def mod37_2_check_character(data: str) -> str:
    """Compute the ISO 7064 Mod 37-2 check character of a string of COI_ALPHABET characters."""
    total = 0
    for char in data:
        value = _VALUES.get(char)
        if value is None:
            raise ValidationError(
                f"{char!r} is not one of the characters 0-9, A-Z and *",
                field="coi",
                code="coi-format",
            )
        total = ((total + value) * 2) % 37
    return COI_ALPHABET[(38 - total) % 37]


@dataclass(frozen=True, slots=True)
class Coi:
    """A chain-of-identity code: an ISBT 128 DIN and its check character."""

    facility: str
    year: str
    serial: str
    check: str

    @property
    def din(self) -> str:
        """Return the 13-character Donation Identification Number."""
        return f"{self.facility}{self.year}{self.serial}"

    def __str__(self) -> str:
        """Return the canonical 14-character form."""
        return f"{self.din}{self.check}"


def parse_coi(text: str) -> Coi:
    """Parse a COI typed or scanned by a person, refusing a wrong shape or check character."""
    if not isinstance(text, str):
        raise ValidationError("the COI must be a string", field="coi", code="coi-format")
    compact = "".join(text.split())
    # Checked before upper(): it maps some non-ASCII letters (the dotless i, the long s)
    # onto ASCII ones, which would let a look-alike COI through.
    match = _COI_RE.fullmatch(compact.upper()) if compact.isascii() else None
    if match is None:
        raise ValidationError(
            "the COI must be 14 characters: a 13-character ISBT 128 DIN (a letter, four letters"
            " or digits, a 2-digit year, a 6-digit serial) and its check character",
            field="coi",
            code="coi-format",
        )
    coi = Coi(*match.groups())
    # The expected character is deliberately not named: a person told it would copy it, and
    # the check would stop catching a mistyped DIN, which is the one thing it is for.
    if mod37_2_check_character(coi.din) != coi.check:
        raise ValidationError(
            f"the check character {coi.check!r} does not match the DIN {coi.din}:"
            " re-read the COI from the label",
            field="coi",
            code="coi-check-character",
        )
    return coi


def _normalise(text: str) -> str:
    # NFKC around casefold (Unicode caseless matching) so that a name typed with composed or
    # decomposed accents, full-width digits or another case still matches.
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    return " ".join(folded.split())


def patient_hash(patient: Mapping[str, str], *, secret_key: bytes) -> str:
    """Return the keyed hash (HMAC-SHA256, hex) of normalised patient identifiers."""
    if not isinstance(secret_key, bytes) or not secret_key:
        # A missing key would make the hash a plain, guessable digest of the identity.
        raise ValueError("secret_key must be non-empty bytes")
    if not isinstance(patient, Mapping) or not patient:
        raise ValidationError("patient must be a non-empty object of identifiers", field="patient")
    canonical: dict[str, str] = {}
    for key, value in patient.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValidationError("patient identifiers must be strings", field="patient")
        name = _normalise(key)
        if not name:
            raise ValidationError("a patient identifier has an empty name", field="patient")
        if name in canonical:
            raise ValidationError(
                f"the patient identifier {name!r} is given twice", field="patient"
            )
        canonical[name] = _normalise(value)
    if not any(canonical.values()):
        raise ValidationError("every patient identifier is blank", field="patient")
    message = json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode("ascii")
    return hmac.new(secret_key, message, hashlib.sha256).hexdigest()
