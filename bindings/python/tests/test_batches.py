"""Batched calls (issue 14): `Store.complete_many` completes many claims in
one call and one transaction, each item refused on its own;
`Organization.create_many_returning_ids` creates as `create_many` does and
answers ids; `Store.dispatch_due_with` places calls on several threads, each
once."""

from __future__ import annotations

import datetime
import threading
import time
from typing import List, Set

import pytest
from conftest import T0, new

import callback_store as cs

E = cs.CallbackStoreError
NOW = T0 + datetime.timedelta(days=1)


def claim_all(store: cs.Store, org: cs.Organization, n: int) -> List[cs.Claim]:
    ids = [org.create(new(hours=i / 60)).id for i in range(n)]
    claims = store.claim_due(NOW, 100)
    assert [c.id() for c in claims] == ids
    return claims


def test_a_batch_completes_every_claim_in_one_call(store: cs.Store, org: cs.Organization) -> None:
    claims = claim_all(store, org, 5)
    outcomes = store.complete_many([cs.Completion(claim=c, created_session_id=f"sess_{i}") for i, c in enumerate(claims)])
    assert outcomes == [cs.CompletionOutcome(id=c.id(), error=None) for c in claims]
    for i, claim in enumerate(claims):
        done = org.get(claim.id())
        assert (done.status, done.created_session_id) == (cs.Status.DISPATCHED, f"sess_{i}")
        assert [(e._from, e.to) for e in org.history(claim.id())][-1] == (cs.Status.DISPATCHING, cs.Status.DISPATCHED)


def test_a_refused_item_fails_alone_and_the_others_complete(store: cs.Store, org: cs.Organization) -> None:
    ok, stale, bad_session = claim_all(store, org, 3)
    org.fail_dispatch(stale.id(), "hung up")  # without the token: the claim is stale now
    stale_row = org.get(stale.id())
    outcomes = store.complete_many(
        [
            cs.Completion(claim=ok, created_session_id="sess_ok"),
            cs.Completion(claim=stale, created_session_id="sess_late"),
            cs.Completion(claim=bad_session, created_session_id=""),
        ]
    )
    assert [o.id for o in outcomes] == [ok.id(), stale.id(), bad_session.id()]
    assert outcomes[0].error is None
    assert outcomes[1].error is not None and outcomes[1].error.code == "INVALID_TRANSITION"
    assert "stale claim" in outcomes[1].error.reason
    assert outcomes[2].error is not None and outcomes[2].error.code == "VALIDATION_ERROR"
    assert outcomes[2].error.reason.startswith("completions[2].created_session_id:"), outcomes[2].error
    assert org.get(ok.id()).status is cs.Status.DISPATCHED
    assert org.get(stale.id()) == stale_row
    # The refused item is untouched: its claim still completes it.
    assert org.get(bad_session.id()).status is cs.Status.DISPATCHING
    again = store.complete_many([cs.Completion(claim=bad_session, created_session_id="sess_2")])
    assert again == [cs.CompletionOutcome(id=bad_session.id(), error=None)]


def test_a_claim_completed_twice_in_one_batch_is_refused_the_second_time(store: cs.Store, org: cs.Organization) -> None:
    (claim,) = claim_all(store, org, 1)
    outcomes = store.complete_many([cs.Completion(claim=claim, created_session_id="sess_1"), cs.Completion(claim=claim, created_session_id="sess_2")])
    assert outcomes[0].error is None
    assert outcomes[1].error is not None and outcomes[1].error.code == "INVALID_TRANSITION"
    assert org.get(claim.id()).created_session_id == "sess_1"


def test_an_empty_batch_answers_nothing(store: cs.Store) -> None:
    assert store.complete_many([]) == []


@pytest.mark.parametrize(
    "build, field",
    [
        (lambda claim: [claim], "completions[0]"),
        (lambda claim: [cs.Completion(claim=claim, created_session_id="s"), cs.Completion(claim=claim.callback(), created_session_id="s")], "completions[1].claim"),
        (lambda claim: [cs.Completion(claim=claim, created_session_id=claim)], "completions[0].created_session_id"),
        (lambda claim: cs.Completion(claim=claim, created_session_id="s"), "completions"),
    ],
)
def test_an_item_that_is_not_a_completion_of_a_claim_is_a_validation_error_naming_it(
    store: cs.Store, org: cs.Organization, build, field: str
) -> None:
    (claim,) = claim_all(store, org, 1)
    with pytest.raises(E.ValidationError) as info:
        store.complete_many(build(claim))
    assert str(info.value).startswith(f"{field}: must be "), info.value
    assert org.get(claim.id()).status is cs.Status.DISPATCHING


def test_create_many_returning_ids_stores_what_create_many_stores_and_answers_their_ids(
    store: cs.Store, org: cs.Organization
) -> None:
    batch = [new(hours=i, to_number=f"+1201555010{i}", metadata={"i": i}) for i in range(3)]
    ids = org.create_many_returning_ids(batch)
    assert [org.get(id).to_number for id in ids] == [cb.to_number for cb in batch]
    twins = org.create_many(batch)
    for id, twin in zip(ids, twins):  # the same record but for its id
        stored = cs.to_api_dict(org.get(id))
        assert stored.pop("id") == id != twin.id
        assert {k: v for k, v in cs.to_api_dict(twin).items() if k != "id"} == stored


def test_create_many_returning_ids_with_a_bad_item_names_it_and_creates_nothing(org: cs.Organization) -> None:
    with pytest.raises(E.ValidationError) as info:
        org.create_many_returning_ids([new(), new(to_number="12")])
    assert str(info.value).startswith("callbacks[1].to_number:"), info.value
    assert org.list().callbacks == []


class ThreadedDialer(cs.Dispatcher):
    """Records who was called, from which thread, and how many calls were
    under way at once; each call takes `seconds` (a sleep, which lets the
    other threads in)."""

    def __init__(self, seconds: float, refuse: str = "") -> None:
        self.seconds, self.refuse = seconds, refuse
        self.lock = threading.Lock()
        self.calls: List[str] = []
        self.threads: Set[int] = set()
        self.under_way = self.most_at_once = 0

    def place_call(self, callback: cs.Callback) -> str:
        with self.lock:
            self.calls.append(callback.id)
            self.threads.add(threading.get_ident())
            self.under_way += 1
            self.most_at_once = max(self.most_at_once, self.under_way)
        try:
            time.sleep(self.seconds)
            if callback.id == self.refuse:
                raise RuntimeError("line busy")
            return f"sess_{callback.id[-6:]}"
        finally:
            with self.lock:
                self.under_way -= 1


def test_dispatch_due_with_places_each_call_once_from_several_threads(store: cs.Store, org: cs.Organization) -> None:
    ids = [org.create(new(hours=i / 60)).id for i in range(12)]
    dialer = ThreadedDialer(seconds=0.05, refuse=ids[5])
    report = store.dispatch_due_with(dialer, NOW, 100, cs.DispatchOptions(concurrency=4))
    assert sorted(dialer.calls) == sorted(ids)  # each once
    assert [cb.id for cb in report.dispatched] == ids[:5] + ids[6:]  # claim order
    assert [(cb.id, cb.failure_cause) for cb in report.failed] == [(ids[5], "line busy")]
    assert threading.get_ident() not in dialer.threads
    assert len(dialer.threads) >= 2 and dialer.most_at_once >= 2, (dialer.threads, dialer.most_at_once)
    assert dialer.most_at_once <= 4
    for cb in report.dispatched:
        assert org.get(cb.id).created_session_id == f"sess_{cb.id[-6:]}"
    nothing = store.dispatch_due_with(dialer, NOW, 100, cs.DispatchOptions(concurrency=4))
    assert (nothing.dispatched, nothing.failed, len(dialer.calls)) == ([], [], 12)


def test_dispatch_options_default_to_one_call_at_a_time(store: cs.Store, org: cs.Organization) -> None:
    ids = [org.create(new(hours=i / 60)).id for i in range(3)]
    dialer = ThreadedDialer(seconds=0.01)
    assert cs.DispatchOptions().concurrency == 1
    report = store.dispatch_due_with(dialer, NOW, 100, cs.DispatchOptions())
    assert [cb.id for cb in report.dispatched] == ids and dialer.most_at_once == 1


@pytest.mark.parametrize(
    "concurrency, message",
    [
        (0, "concurrency: must be between 1 and 256, got 0"),
        (257, "concurrency: must be between 1 and 256, got 257"),
        (-1, "concurrency: must be between 1 and 256, got -1"),
        (2.5, "concurrency: must be an integer between 1 and 256, got 2.5"),
    ],
)
def test_a_concurrency_outside_1_to_256_is_a_validation_error_and_claims_nothing(
    store: cs.Store, org: cs.Organization, concurrency: object, message: str
) -> None:
    cb = org.create(new(0))
    dialer = ThreadedDialer(seconds=0)
    with pytest.raises(E.ValidationError) as info:
        store.dispatch_due_with(dialer, NOW, 100, cs.DispatchOptions(concurrency=concurrency))  # type: ignore[arg-type]
    assert (info.value.code, str(info.value)) == ("VALIDATION_ERROR", message)
    assert cs.max_concurrency() == 256
    assert org.get(cb.id).status is cs.Status.SCHEDULED and dialer.calls == []
