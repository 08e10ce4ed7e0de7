"""Checked by mypy --strict in scripts/test-bindings.sh and run by pytest: the
package's type hints are usable as an analysis script would use them."""

from __future__ import annotations

import datetime
from typing import Any, Dict, List, Optional

import callback_store as cs


class Dialer(cs.Dispatcher):
    def place_call(self, callback: cs.Callback) -> str:
        return f"sess_for_{callback.id}"


def test_typed_usage() -> None:
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    store: cs.Store = cs.Store.open_in_memory(cs.StoreOptions(clock=cs.ManualClock(when)))
    org: cs.Organization = store.organization("org_a")
    cb: cs.Callback = org.create(
        cs.NewCallback(to_number="+12015551234", scheduled_at=when, metadata={"a": 1})
    )
    scheduled: datetime.datetime = cb.scheduled_at
    metadata: Dict[str, Any] = cb.metadata
    page: cs.Page = org.list(cs.ListQuery(limit=5, status=cs.Status.SCHEDULED))
    rows: List[Dict[str, Any]] = cs.to_records(page)
    try:
        org.get("cb_missing")
    except cs.CallbackStoreError.NotFound as e:
        code: str = e.code
        assert code == "NOT_FOUND" and e.message
    report: cs.DispatchReport = store.dispatch_due(Dialer(), scheduled, 10)
    assert [c.id for c in report.dispatched] == [cb.id] and rows and metadata == {"a": 1}


def test_typed_claims() -> None:
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    store = cs.Store.open_in_memory(cs.StoreOptions(clock=cs.ManualClock(when)))
    org = store.organization("org_a")
    first = org.create(cs.NewCallback(to_number="+12015551234", scheduled_at=when))
    second = org.create(cs.NewCallback(to_number="+12015551235", scheduled_at=when))
    claims: List[cs.Claim] = store.claim_due(when, 1)
    token: str = claims[0].token()
    again: cs.Claim = store.claim_by_token(claims[0].id(), token)
    placed: cs.Callback = store.place_call(Dialer(), again)
    as_json: Dict[str, Any] = cs.to_api_dict(claims[0])
    now: cs.Claim = org.dispatch(second.id)
    done = org.complete_dispatch(second.id, "sess_x", claim_token=now.token())
    assert placed.id == first.id and as_json["token"] == token and done.status is cs.Status.DISPATCHED


def test_typed_calling_policy() -> None:
    when = datetime.datetime(2030, 1, 1, 13, tzinfo=datetime.timezone.utc)
    store = cs.Store.open_in_memory(cs.StoreOptions(clock=cs.ManualClock(when)))
    org = store.organization("org_a")
    window = cs.CallingWindow(days=[cs.Weekday.MON, cs.Weekday.TUE], start="08:00", end="21:00")
    policy: cs.CallingPolicy = org.set_calling_policy(
        cs.CallingPolicy(
            timezone="America/New_York",
            windows=[window],
            max_attempts=3,
            retry_intervals=["2h"],
            retry_on=[cs.CallOutcome.NO_ANSWER],
        )
    )
    agent: Optional[cs.CallingPolicy] = org.agent_calling_policy("agent_1")
    deadline: datetime.datetime = when + datetime.timedelta(days=1)
    cb = org.create(cs.NewCallback(to_number="+12015551234", scheduled_at=when, expires_at=deadline))
    org.dispatch(cb.id)
    org.complete_dispatch(cb.id, "sess_1")
    follow_up: cs.Callback = org.retry(cb.id, cs.CallOutcome.NO_ANSWER)
    attempt: int = follow_up.attempt
    expired: List[cs.Callback] = store.expire_overdue(deadline, 10)
    version: str = cs.tzdb_version()
    # The follow-up (scheduled 2h later) carries the deadline and reaches it unplaced.
    assert [c.id for c in expired] == [follow_up.id] and expired[0].failure_cause == cs.expired()
    assert policy.max_attempts == 3 and agent is None and attempt == 2 and version


class Printer(cs.ChangeObserver):
    def __init__(self) -> None:
        self.seen: List[cs.Change] = []

    def on_changes(self, changes: List[cs.Change]) -> None:
        self.seen += changes

    # Exception: the generated class's own CallbackStoreError is not the
    # one type checkers see as cs.CallbackStoreError (_error_types.pyi).
    def on_error(self, error: Exception) -> None:
        raise cs.ObserverError.Stop(str(error))


def test_typed_feed() -> None:
    when = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    store = cs.Store.open_in_memory(cs.StoreOptions(clock=cs.ManualClock(when)))
    org = store.organization("org_a")
    cb = org.create(cs.NewCallback(to_number="+12015551234", scheduled_at=when))
    # The generated Since variants are untyped: cs.to_since gives a typed Since.
    page: cs.ChangePage = org.changes(cs.to_since("start"), 10, datetime.timedelta(0))
    first: cs.Change = page.changes[0]
    action: cs.EventAction = first.event.action
    followed: List[cs.Change] = list(cs.follow(org, "start", timeout=0.2, wait=0.1))
    watch: cs.Watch = org.watch(cs.to_since(page.next_cursor), Printer())
    watch.cancel()
    assert action == cs.EventAction.CREATE and followed == page.changes and first.event.callback_id == cb.id
