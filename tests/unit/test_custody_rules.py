"""The life cycle, custody and receipt rules, and signature hashing: pure, exhaustively."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from coldchain.domain.custody import (
    Decision,
    Disposition,
    ExcursionState,
    check_chain,
    check_receipt,
    check_seal,
)
from coldchain.domain.errors import ConflictError, ValidationError
from coldchain.domain.lifecycle import (
    FINISHED,
    TRANSITIONS,
    Status,
    Transition,
    apply,
    handoff_transition,
)
from coldchain.domain.signatures import (
    MAX_FAILED_SIGNATURES,
    after_wrong_password,
    canonical_json,
    check_meaning,
    record_hash,
)

EXPECTED = {
    ("created", "pick_up"): "picked_up",
    ("created", "deliver"): "delivered",
    ("created", "cancel"): "cancelled",
    ("picked_up", "transfer"): "in_transit",
    ("picked_up", "deliver"): "delivered",
    ("picked_up", "cancel"): "cancelled",
    ("in_transit", "transfer"): "in_transit",
    ("in_transit", "deliver"): "delivered",
    ("in_transit", "cancel"): "cancelled",
    ("delivered", "accept"): "received",
    ("delivered", "reject"): "rejected",
    ("delivered", "quarantine"): "quarantined",
    ("quarantined", "accept"): "received",
    ("quarantined", "reject"): "rejected",
}


@pytest.mark.parametrize(
    ("status", "transition"),
    list(itertools.product(Status, Transition)),
    ids=lambda v: v.value,
)
def test_every_state_and_transition_pair_is_allowed_or_refused_as_the_table_says(
    status: Status, transition: Transition
) -> None:
    expected = EXPECTED.get((status.value, transition.value))
    if expected is None:
        with pytest.raises(ConflictError) as refused:
            apply(status, transition)
        assert refused.value.code == "illegal-transition"
        assert status.value in refused.value.message and transition.value in refused.value.message
    else:
        assert apply(status, transition).value == expected


def test_finished_states_have_no_way_out_and_every_state_is_reachable() -> None:
    assert {s for (s, _t) in TRANSITIONS} & FINISHED == set()
    reached = {Status.CREATED}
    frontier = [Status.CREATED]
    while frontier:
        current = frontier.pop()
        for (source, _t), target in TRANSITIONS.items():
            if source is current and target not in reached:
                reached.add(target)
                frontier.append(target)
    assert reached == set(Status)


@pytest.mark.parametrize(
    ("status", "to_party", "expected"),
    [
        (Status.CREATED, "courier", Transition.PICK_UP),
        (Status.CREATED, "TC-1", Transition.DELIVER),
        (Status.PICKED_UP, "courier2", Transition.TRANSFER),
        (Status.IN_TRANSIT, "HUB-1", Transition.TRANSFER),
        (Status.IN_TRANSIT, "TC-1", Transition.DELIVER),
    ],
)
def test_a_handoff_names_its_transition(
    status: Status, to_party: str, expected: Transition
) -> None:
    assert handoff_transition(status, to_party=to_party, destination="TC-1") is expected


def test_the_chain_must_continue_from_the_holder_to_someone_else() -> None:
    check_chain(holder="MFG-1", from_party="MFG-1", to_party="courier")
    with pytest.raises(ConflictError) as broken:
        check_chain(holder="courier", from_party="MFG-1", to_party="courier2")
    assert (broken.value.code, broken.value.field) == ("custody-chain-broken", "from_party")
    with pytest.raises(ValidationError):
        check_chain(holder="courier", from_party="courier", to_party="courier")


@pytest.mark.parametrize(
    ("recorded", "seen", "reason", "outcome"),
    [
        (None, "S-1", None, ("S-1", None)),  # first seal recorded at the first handoff
        ("S-1", "S-1", None, ("S-1", None)),
        ("S-1", "S-1", "needless reason", ("S-1", None)),
        ("S-1", "S-2", "customs resealed it", ("S-2", "S-1")),
        ("S-1", "S-2", None, "seal-mismatch"),
        ("S-1", "S-2", "   ", "seal-mismatch"),
        ("S-1", "s-1", None, "seal-mismatch"),  # seal numbers are compared exactly
    ],
)
def test_the_seal_must_match_unless_a_change_is_explained(
    recorded: str | None, seen: str, reason: str | None, outcome: object
) -> None:
    if isinstance(outcome, str):
        with pytest.raises(ConflictError) as refused:
            check_seal(recorded=recorded, seen=seen, change_reason=reason)
        assert (refused.value.code, refused.value.field) == (outcome, "seal_id")
    else:
        check = check_seal(recorded=recorded, seen=seen, change_reason=reason)
        assert (check.seal_id, check.changed_from) == outcome


def excursion(
    status: str = "CLOSED",
    resolution: str | None = None,
    disposition: Disposition | None = None,
    decided_on: int | None = None,
    version: int = 3,
) -> ExcursionState:
    return ExcursionState(1, "HIGH", status, resolution, version, disposition, decided_on)


@pytest.mark.parametrize(
    ("state", "accept_code"),
    [
        (excursion(status="OPEN"), "excursion-undecided"),
        (excursion(), "excursion-undecided"),
        (excursion(disposition=Disposition.PRODUCT_ACCEPTABLE, decided_on=3), None),
        # Decided on version 2, but the excursion has grown since: the decision is stale.
        (
            excursion(disposition=Disposition.PRODUCT_ACCEPTABLE, decided_on=2),
            "excursion-undecided",
        ),
        (
            excursion(disposition=Disposition.PRODUCT_REJECTED, decided_on=3),
            "excursion-not-acceptable",
        ),
        (
            excursion(disposition=Disposition.NEEDS_INVESTIGATION, decided_on=3),
            "excursion-not-acceptable",
        ),
        (excursion(resolution="recovered"), None),  # a backfill filled the loss
        (excursion(resolution="retracted"), None),  # late readings made it no excursion
    ],
)
def test_accept_needs_every_excursion_found_acceptable_on_its_current_record(
    state: ExcursionState, accept_code: str | None
) -> None:
    for decision in (Decision.REJECT, Decision.QUARANTINE):
        check_receipt(decision=decision, seal_matches=True, excursions=[state])
    if accept_code is None:
        check_receipt(decision=Decision.ACCEPT, seal_matches=True, excursions=[state])
    else:
        with pytest.raises(ConflictError) as refused:
            check_receipt(decision=Decision.ACCEPT, seal_matches=True, excursions=[state])
        assert (refused.value.code, refused.value.field) == (accept_code, "decision")


def test_a_wrong_seal_at_receipt_refuses_accept_only() -> None:
    with pytest.raises(ConflictError) as refused:
        check_receipt(decision=Decision.ACCEPT, seal_matches=False, excursions=[])
    assert refused.value.code == "seal-mismatch"
    check_receipt(decision=Decision.QUARANTINE, seal_matches=False, excursions=[])
    check_receipt(decision=Decision.REJECT, seal_matches=False, excursions=[])


def test_the_fifth_wrong_password_in_a_row_locks() -> None:
    failures = 0
    for attempt in range(1, MAX_FAILED_SIGNATURES + 1):
        outcome = after_wrong_password(failures)
        failures = outcome.failures
        assert outcome.failures == attempt
        assert outcome.locks is (attempt == 5)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@given(st.dictionaries(st.text(), json_values, max_size=6))
def test_the_record_hash_does_not_depend_on_key_order(record: dict[str, object]) -> None:
    reordered = dict(reversed(list(record.items())))
    assert record_hash(record) == record_hash(reordered)
    assert "." not in canonical_json({"x": 1}) and '"0.1"' in canonical_json({"x": 0.1})


def test_any_change_to_a_signed_record_changes_its_hash() -> None:
    record = {"from_party": "MFG-1", "to_party": "courier", "seal_id": "S-1", "temp": -190.5}
    base = record_hash(record)
    for key in record:
        changed = dict(record)
        changed[key] = f"{record[key]}x"
        assert record_hash(changed) != base, key
    assert record_hash({**record, "extra": None}) != base


@pytest.mark.parametrize("meaning", ["", "   ", None, 5, "x" * 201])
def test_a_signature_needs_a_meaning(meaning: object) -> None:
    with pytest.raises(ValidationError) as refused:
        check_meaning(meaning)
    assert refused.value.field == "signature.meaning"
    assert check_meaning("  Released   to courier ") == "Released to courier"
