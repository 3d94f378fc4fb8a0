"""Unit tests of the chain-of-identity rules: COI check character and patient hashes."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coldchain.domain.errors import ValidationError
from coldchain.domain.identity import (
    COI_ALPHABET,
    Coi,
    mod37_2_check_character,
    parse_coi,
    patient_hash,
)

VALID_COIS = ["G123498654321H", "ABCDE27000069C"]
KEY = b"test-secret-key"


def reference_check_character(data: str) -> str:
    """Compute ISO 7064 Mod 37-2 from its definition: sum of value * 2**position, mod 37."""
    # Weights count from the right: 2**0 for the check character, 2**j for the j-th data
    # character from the right.
    total = sum(COI_ALPHABET.index(char) * pow(2, len(data) - i, 37) for i, char in enumerate(data))
    # The check character c makes total + c congruent to 1 modulo 37.
    return COI_ALPHABET[(1 - total) % 37]


# --- the check character -----------------------------------------------------------------


@pytest.mark.parametrize(("data", "check"), [("G123498654321", "H"), ("ABCDE27000069", "C")])
def test_the_check_character_of_the_reference_vectors(data: str, check: str) -> None:
    assert mod37_2_check_character(data) == check


@given(st.text(alphabet=COI_ALPHABET, max_size=30))
def test_the_check_character_agrees_with_the_definition_of_mod_37_2(data: str) -> None:
    check = mod37_2_check_character(data)
    assert check in COI_ALPHABET
    assert check == reference_check_character(data)


def test_every_character_of_the_alphabet_can_be_a_check_character() -> None:
    checks = {mod37_2_check_character(din) for din in dins()}
    assert checks == set(COI_ALPHABET)


@pytest.mark.parametrize("data", ["g123498654321", "G12349865432 ", "G-123", "É", "\x00", "Ａ"])
def test_a_character_outside_the_alphabet_has_no_check_character(data: str) -> None:
    with pytest.raises(ValidationError) as caught:
        mod37_2_check_character(data)
    assert caught.value.field == "coi"


# --- parsing a COI -----------------------------------------------------------------------


def test_a_coi_is_parsed_into_its_parts() -> None:
    coi = parse_coi("G123498654321H")
    assert coi == Coi(facility="G1234", year="98", serial="654321", check="H")
    assert coi.din == "G123498654321"
    assert str(coi) == "G123498654321H"


def test_a_facility_code_may_have_letters_after_its_first_letter() -> None:
    coi = parse_coi("ABCDE27000069C")
    assert (coi.facility, coi.year, coi.serial, coi.check) == ("ABCDE", "27", "000069", "C")


def test_a_check_character_may_be_an_asterisk() -> None:
    din = next(din for din in dins() if mod37_2_check_character(din) == "*")
    assert str(parse_coi(din + "*")) == din + "*"


@pytest.mark.parametrize(
    "text",
    [
        "g123498654321h",
        "G1234 98 654321 H",
        "  G123498654321H  ",
        "G1234\t98\n654321\r\nH",
        "G1234\u00a098\u2003654321H",  # no-break and em spaces pasted from a document
        "g 1 2 3 4 9 8 6 5 4 3 2 1 h",
    ],
)
def test_spaces_and_lower_case_are_accepted(text: str) -> None:
    assert str(parse_coi(text)) == "G123498654321H"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "G123498654321",  # no check character
        "G123498654321HH",
        "G12349865432H",
        "1123498654321H",  # the facility code starts with a digit
        "*123498654321H",
        "G12*498654321H",
        "G1234A8654321H",  # a letter in the year
        "G12349865432AH",  # a letter in the serial
        "G123498654321-",
        "G123498654321.",
        "G-1234-98-654321-H",
        "G123498654321\u0130",  # dotted capital I
        "\u0131123498654321H",  # dotless i, which upper() turns into I
        "\u017f123498654321H",  # long s, which upper() turns into S
        "G１２３４98654321H",  # full-width digits
        "G123498654321H\x00",
    ],
)
def test_a_coi_of_the_wrong_shape_is_a_format_error(text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_coi(text)
    assert caught.value.code == "coi-format"
    assert caught.value.field == "coi"


@pytest.mark.parametrize("text", [None, 123498654321, b"G123498654321H", ["G123498654321H"]])
def test_a_coi_that_is_not_a_string_is_a_format_error(text: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_coi(text)
    assert caught.value.code == "coi-format"


def test_a_wrong_check_character_is_refused_without_revealing_the_right_one() -> None:
    with pytest.raises(ValidationError) as caught:
        parse_coi("G123498654321J")
    assert caught.value.code == "coi-check-character"
    assert caught.value.field == "coi"
    assert "'J'" in caught.value.message
    assert "'H'" not in caught.value.message


def substitutions(coi: str) -> Iterator[str]:
    """Yield every COI that differs from coi in exactly one character of the alphabet."""
    for position, original in enumerate(coi):
        for char in COI_ALPHABET:
            if char != original:
                yield coi[:position] + char + coi[position + 1 :]


@pytest.mark.parametrize("coi", VALID_COIS)
def test_every_single_character_substitution_is_detected(coi: str) -> None:
    checked = 0
    for typo in substitutions(coi):
        with pytest.raises(ValidationError) as caught:
            parse_coi(typo)
        if caught.value.code == "coi-check-character":
            checked += 1
        else:
            assert caught.value.code == "coi-format"
    # Most typos keep the shape of a COI: those are caught by the check character alone.
    assert checked > 200


@pytest.mark.parametrize("coi", VALID_COIS)
def test_every_swap_of_two_adjacent_different_characters_is_detected(coi: str) -> None:
    for i in range(len(coi) - 1):
        if coi[i] != coi[i + 1]:
            swapped = coi[:i] + coi[i + 1] + coi[i] + coi[i + 2 :]
            with pytest.raises(ValidationError):
                parse_coi(swapped)


def dins() -> Iterator[str]:
    """Yield well-formed DINs."""
    for serial in range(10_000):
        yield f"W1234{serial % 100:02d}{serial:06d}"


@given(
    st.from_regex(r"[A-Z][A-Z0-9]{4}[0-9]{8}", fullmatch=True),
    st.integers(min_value=0, max_value=13),
    st.sampled_from(COI_ALPHABET),
)
def test_any_valid_coi_round_trips_and_any_substitution_in_it_is_caught(
    din: str, position: int, char: str
) -> None:
    coi = din + mod37_2_check_character(din)
    assert str(parse_coi(coi.lower())) == coi
    typo = coi[:position] + char + coi[position + 1 :]
    if typo != coi:
        with pytest.raises(ValidationError):
            parse_coi(typo)


def test_a_coi_is_immutable_and_hashable() -> None:
    coi = parse_coi("G123498654321H")
    with pytest.raises(dataclasses.FrozenInstanceError):
        coi.check = "J"  # type: ignore[misc]
    assert {coi, parse_coi("g1234 98 654321 h")} == {coi}


# --- patient hashes ----------------------------------------------------------------------


def test_a_patient_hash_is_the_hmac_sha256_of_canonical_json() -> None:
    expected = hmac.new(KEY, b'{"mrn":"123","name":"ada lovelace"}', hashlib.sha256).hexdigest()
    assert patient_hash({"name": "Ada Lovelace", "mrn": "123"}, secret_key=KEY) == expected


def test_a_patient_hash_is_64_hex_characters_and_never_contains_the_identity() -> None:
    digest = patient_hash({"mrn": "123456"}, secret_key=KEY)
    assert len(digest) == 64 and set(digest) <= set("0123456789abcdef")
    assert "123456" not in digest


def test_re_entering_identifiers_with_other_case_spacing_and_order_matches() -> None:
    created = patient_hash(
        {"Name": "  Ada   LOVELACE ", "MRN": "x-123", "Date of birth": "1815-12-10"},
        secret_key=KEY,
    )
    received = patient_hash(
        {"date  of birth": "1815-12-10", "mrn": "X-123", "name": "ada\tlovelace"},
        secret_key=KEY,
    )
    assert created == received


def test_composed_and_decomposed_accents_match() -> None:
    composed = patient_hash({"name": "Ren\u00e9e"}, secret_key=KEY)
    decomposed = patient_hash({"name": "Rene\u0301e"}, secret_key=KEY)
    assert composed == decomposed
    assert patient_hash({"name": "STRASSE"}, secret_key=KEY) == patient_hash(
        {"name": "straße"}, secret_key=KEY
    )


@pytest.mark.parametrize(
    "other",
    [
        {"mrn": "124", "name": "ada lovelace"},
        {"mrn": "123", "name": "ada  lovelac"},
        {"mrn": "123", "name": "adalovelace"},
        {"mrn": "123"},
        {"mrn": "123", "name": "ada lovelace", "dob": "1815-12-10"},
        {"mrn": "ada lovelace", "name": "123"},
        {"id": "123", "name": "ada lovelace"},
        {"mrn": "123,name:ada lovelace"},
    ],
)
def test_different_identifiers_do_not_match(other: dict[str, str]) -> None:
    reference = patient_hash({"mrn": "123", "name": "ada lovelace"}, secret_key=KEY)
    assert patient_hash(other, secret_key=KEY) != reference


def test_the_hash_depends_on_the_secret_key() -> None:
    patient = {"mrn": "123"}
    assert patient_hash(patient, secret_key=b"a") != patient_hash(patient, secret_key=b"b")


@pytest.mark.parametrize("secret_key", [b"", "text-key", None])
def test_a_missing_secret_key_is_a_programming_error(secret_key: Any) -> None:
    with pytest.raises(ValueError, match="secret_key"):
        patient_hash({"mrn": "123"}, secret_key=secret_key)


@pytest.mark.parametrize(
    "patient",
    [
        {},
        None,
        "mrn=123",
        ["mrn", "123"],
        [("mrn", "123")],
        {"mrn": 123},
        {"mrn": None},
        {"mrn": ["123"]},
        {1: "123"},
        {"": "123"},
        {"   ": "123"},
        {"mrn": ""},
        {"mrn": "  ", "name": "\t"},
        {"MRN": "123", "mrn": "124"},
        {"date of birth": "1", "Date  Of Birth": "2"},
    ],
)
def test_patient_identifiers_must_be_a_non_empty_object_of_strings(patient: Any) -> None:
    with pytest.raises(ValidationError) as caught:
        patient_hash(patient, secret_key=KEY)
    assert caught.value.field == "patient"


def test_a_blank_identifier_beside_a_real_one_is_kept() -> None:
    with_blank = patient_hash({"mrn": "123", "middle name": ""}, secret_key=KEY)
    assert with_blank == patient_hash({"mrn": "123", "Middle Name": "  "}, secret_key=KEY)
    assert with_blank != patient_hash({"mrn": "123"}, secret_key=KEY)


def test_a_lone_surrogate_in_an_identifier_is_hashed_without_error() -> None:
    assert len(patient_hash({"name": "\ud800"}, secret_key=KEY)) == 64


@given(
    st.dictionaries(
        st.text(alphabet="abcdefgh ", min_size=1, max_size=8).filter(str.strip),
        st.text(alphabet="abcXYZ 0123-", min_size=1, max_size=12).filter(str.strip),
        min_size=1,
        max_size=5,
    ).filter(lambda d: len({" ".join(k.split()) for k in d}) == len(d)),
    st.sampled_from([str.upper, str.lower, str.title, str.swapcase]),
    st.sampled_from(["  ", "\t", " \n "]),
)
def test_any_identity_matches_itself_re_cased_and_re_spaced(
    patient: dict[str, str], recase: Any, space: str
) -> None:
    retyped = {
        space + space.join(recase(key).split()): space.join(recase(value).split()) + space
        for key, value in reversed(patient.items())
    }
    assert patient_hash(retyped, secret_key=KEY) == patient_hash(patient, secret_key=KEY)
