"""Fenced claims through the Python door (issue 10): a call is placed at most
once per claim, whatever the caller passes. Every refusal has its code,
never calls the dialer and leaves the row and its history as they were."""

from __future__ import annotations

import datetime
import re
import secrets
from typing import Any, Callable, Dict, List, Tuple

import pytest
from conftest import T0, CountingDialer, new

import callback_store as cs

E = cs.CallbackStoreError


def snapshot(org: cs.Organization, id: str) -> Tuple[Dict[str, Any], List[Any]]:
    """Everything the binding can see of one callback: the row and its history."""
    return cs.to_api_dict(org.get(id)), cs.to_api_dict(org.history(id))


def live_claim(org: cs.Organization) -> Tuple[cs.Callback, cs.Claim, Tuple[Dict[str, Any], List[Any]]]:
    """A callback dispatched now, its claim, and what it looks like then."""
    cb = org.create(new(1))
    claim = org.dispatch(cb.id)
    return cb, claim, snapshot(org, cb.id)


def refused(call: Callable[[], object], cls: type, code: str) -> cs.CallbackStoreError:
    with pytest.raises(cls) as info:
        call()
    err = info.value
    assert isinstance(err, cs.CallbackStoreError) and err.code == code, err
    return err


def test_a_claim_is_the_callback_plus_a_128_bit_token_and_has_the_api_json_shape(
    store: cs.Store, org: cs.Organization
) -> None:
    a, b = org.create(new(0)), org.create(new(0))
    claims = store.claim_due(T0, 10)
    assert [c.id() for c in claims] == [a.id, b.id]
    for claim in claims:
        assert isinstance(claim, cs.Claim)
        assert re.fullmatch(r"[0-9a-f]{32}", claim.token())
        assert claim.callback().status is cs.Status.DISPATCHING
        assert cs.to_api_dict(claim) == {
            "callback": cs.to_api_dict(claim.callback()),
            "token": claim.token(),
        }
    assert claims[0].token() != claims[1].token()
    assert '"token": "' + claims[0].token() in cs.to_json(claims[0])


def test_the_same_claim_placed_twice_dials_once(store: cs.Store, org: cs.Organization) -> None:
    cb = org.create(new(1))
    claim = org.dispatch(cb.id)
    dialer = CountingDialer("sess_1")
    placed = store.place_call(dialer, claim)
    assert (placed.status, placed.created_session_id) == (cs.Status.DISPATCHED, "sess_1")
    before = snapshot(org, cb.id)
    err = refused(lambda: store.place_call(dialer, claim), E.InvalidTransition, "INVALID_TRANSITION")
    assert "stale claim" in str(err), str(err)
    # The same claim again through claim_by_token: spent, so there is none.
    refused(lambda: store.claim_by_token(cb.id, claim.token()), E.InvalidTransition, "INVALID_TRANSITION")
    assert dialer.calls == [cb.id]
    assert snapshot(org, cb.id) == before


def test_a_claim_spent_by_another_handle_of_it_is_refused(store: cs.Store, org: cs.Organization) -> None:
    # Two objects for one claim (the original and one from claim_by_token,
    # as another worker would hold it): whichever is placed first spends both.
    cb = org.create(new(1))
    original = org.dispatch(cb.id)
    copy = store.claim_by_token(cb.id, original.token())
    assert (copy.id(), copy.token()) == (original.id(), original.token())
    dialer = CountingDialer()
    store.place_call(dialer, copy)
    before = snapshot(org, cb.id)
    refused(lambda: store.place_call(dialer, original), E.InvalidTransition, "INVALID_TRANSITION")
    assert len(dialer.calls) == 1 and snapshot(org, cb.id) == before


def test_a_claim_after_recover_stale_is_refused(store: cs.Store, org: cs.Organization) -> None:
    cb = org.create(new(0))
    [claim] = store.claim_due(T0, 1)
    [recovered] = store.recover_stale(T0 + datetime.timedelta(hours=2), datetime.timedelta(hours=1))
    assert (recovered.id, recovered.status) == (cb.id, cs.Status.FAILED)
    before = snapshot(org, cb.id)
    dialer = CountingDialer()
    refused(lambda: store.place_call(dialer, claim), E.InvalidTransition, "INVALID_TRANSITION")
    refused(lambda: store.claim_by_token(cb.id, claim.token()), E.InvalidTransition, "INVALID_TRANSITION")
    refused(
        lambda: org.complete_dispatch(cb.id, "sess_late", claim_token=claim.token()),
        E.InvalidTransition,
        "INVALID_TRANSITION",
    )
    assert dialer.calls == []
    assert snapshot(org, cb.id) == before
    assert before[0]["failure_cause"] == cs.dispatch_interrupted()


def test_a_forged_token_is_refused_by_claim_by_token_complete_and_fail(
    store: cs.Store, org: cs.Organization
) -> None:
    cb, other = org.create(new(1)), org.create(new(2))
    claim = org.dispatch(cb.id)
    other_claim = org.dispatch(other.id)
    before = snapshot(org, cb.id)
    forged = secrets.token_hex(16)
    assert forged != claim.token()
    for token in (forged, other_claim.token(), claim.token().upper()):
        refused(lambda: store.claim_by_token(cb.id, token), E.InvalidTransition, "INVALID_TRANSITION")
        err = refused(
            lambda: org.complete_dispatch(cb.id, "sess_x", claim_token=token),
            E.InvalidTransition,
            "INVALID_TRANSITION",
        )
        assert "stale claim" in str(err), str(err)
        refused(
            lambda: org.fail_dispatch(cb.id, "busy", claim_token=token), E.InvalidTransition, "INVALID_TRANSITION"
        )
    refused(lambda: store.claim_by_token(cb.id, ""), E.ValidationError, "VALIDATION_ERROR")
    refused(lambda: store.claim_by_token("cb_missing", forged), E.NotFound, "NOT_FOUND")
    assert snapshot(org, cb.id) == before
    # The forgeries changed nothing: the real claim still places, once.
    dialer = CountingDialer()
    assert store.place_call(dialer, claim).status is cs.Status.DISPATCHED
    assert dialer.calls == [cb.id]


def callback_in(status: str, store: cs.Store, org: cs.Organization) -> cs.Callback:
    """A callback brought to `status` through the public API."""
    cb = org.create(new(1))
    if status == "cancelled":
        org.cancel(cb.id, "asked")
    elif status != "scheduled":
        claim = org.dispatch(cb.id)
        if status == "dispatched":
            store.place_call(CountingDialer(), claim)
        elif status == "failed":
            org.fail_dispatch(cb.id, "busy", claim.token())
    record = org.get(cb.id)
    assert record.status is cs.Status[status.upper()]
    return record


HOW_TO_CLAIM = ("claim_due", "Organization.dispatch", "claim_by_token")


@pytest.mark.parametrize("status", ["scheduled", "dispatching", "dispatched", "failed", "cancelled"])
def test_a_callback_record_in_any_status_is_not_a_claim(store: cs.Store, org: cs.Organization, status: str) -> None:
    record = callback_in(status, store, org)
    before = snapshot(org, record.id)
    dialer = CountingDialer()
    err = refused(
        lambda: store.place_call(dialer, record),  # type: ignore[arg-type]
        E.ValidationError,
        "VALIDATION_ERROR",
    )
    assert str(err).startswith("claim: "), str(err)
    assert f"status {status}" in str(err), str(err)
    assert all(how in str(err) for how in HOW_TO_CLAIM), str(err)
    assert dialer.calls == []
    assert snapshot(org, record.id) == before


def test_values_that_only_look_like_claims_are_refused_before_any_call(
    store: cs.Store, org: cs.Organization
) -> None:
    cb, claim, before = live_claim(org)

    class Subclass(cs.Claim):  # whose own methods would name anyone
        def token(self) -> str:
            return claim.token()

    lookalikes: List[object] = [
        cs.to_api_dict(claim),  # the claim's JSON: a dict anyone can write
        {"callback": cb, "token": claim.token()},
        claim.token(),
        (cb.id, claim.token()),
        None,
        cs.Claim.__new__(cs.Claim),  # no claim behind it
        Subclass.__new__(Subclass),
    ]
    dialer = CountingDialer()
    for value in lookalikes:
        err = refused(lambda: store.place_call(dialer, value), E.ValidationError, "VALIDATION_ERROR")  # type: ignore[arg-type]
        assert str(err).startswith("claim: ") and all(h in str(err) for h in HOW_TO_CLAIM), str(err)
    err = refused(lambda: cs.Claim(cb, claim.token()), E.ValidationError, "VALIDATION_ERROR")
    assert str(err).startswith("claim: ") and "claim_by_token" in str(err), str(err)
    assert dialer.calls == []
    assert snapshot(org, cb.id) == before
    assert store.place_call(dialer, claim).status is cs.Status.DISPATCHED  # the real one still works
    assert dialer.calls == [cb.id]


def test_arguments_of_the_wrong_kind_are_validation_errors_naming_them(
    store: cs.Store, org: cs.Organization
) -> None:
    cb, claim, before = live_claim(org)
    calls: List[Tuple[str, Callable[[], object]]] = [
        ("token", lambda: store.claim_by_token(cb.id, 42)),  # type: ignore[arg-type]
        ("token", lambda: store.claim_by_token(cb.id, claim)),  # type: ignore[arg-type]
        ("token", lambda: store.claim_by_token(id=cb.id, token=None)),  # type: ignore[arg-type]
        ("id", lambda: store.claim_by_token(claim, claim.token())),  # type: ignore[arg-type]
        ("claim_token", lambda: org.complete_dispatch(cb.id, created_session_id="s", claim_token=7)),  # type: ignore[arg-type]
        ("claim_token", lambda: org.fail_dispatch(cb.id, "busy", claim_token=b"ab")),  # type: ignore[arg-type]
        ("dispatcher", lambda: store.place_call(lambda c: "sess", claim)),  # type: ignore[arg-type]
        ("dispatcher", lambda: store.place_call(None, claim)),  # type: ignore[arg-type]
        ("dispatcher", lambda: store.dispatch_due(object(), T0, 1)),  # type: ignore[arg-type]
    ]
    for field, call in calls:
        err = refused(call, E.ValidationError, "VALIDATION_ERROR")
        assert str(err).startswith(f"{field}: "), str(err)
    err = refused(lambda: org.complete_dispatch(cb.id, "sess", claim), E.ValidationError, "VALIDATION_ERROR")  # type: ignore[arg-type]
    assert "claim.token()" in str(err), str(err)  # says what to pass instead
    assert snapshot(org, cb.id) == before
    # A claim_token given by keyword or position, as a str, is accepted.
    assert org.complete_dispatch(cb.id, "sess", claim_token=claim.token()).status is cs.Status.DISPATCHED
