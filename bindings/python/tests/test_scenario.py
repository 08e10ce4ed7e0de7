"""An analysis script's day: callbacks created from call analyses, listed by
session, paged through, dispatched by a Python Dispatcher, and turned into
pandas-ready rows."""

from __future__ import annotations

import datetime
import json
from typing import Dict, List

import pytest

import callback_store as cs
from conftest import T0 as t0
from conftest import new

UTC = datetime.timezone.utc
T0 = datetime.datetime(2030, 3, 4, 17, 0, tzinfo=UTC)

# What a call-analysis pipeline produced for three finished calls.
ANALYSES = [
    {
        "session_id": "sess_001",
        "agent_id": "agent_sales",
        "phone": "+12015550101",
        "summary": "Interested, asked for a callback after the board meeting.",
        "callbacks": [
            {"in_hours": 17, "reason": "after the board meeting"},
            {"in_hours": 41, "reason": "follow-up if no answer"},
        ],
        "sentiment": 0.8,
    },
    {
        "session_id": "sess_002",
        "agent_id": "agent_support",
        "phone": "+442071838750",
        "summary": "Router still failing; wants a technician call.",
        "callbacks": [{"in_hours": 1, "reason": "technician"}],
        "sentiment": -0.2,
    },
    {
        "session_id": "sess_003",
        "agent_id": "agent_sales",
        "phone": "+33142685300",
        "summary": "Wrong number.",
        "callbacks": [],
        "sentiment": 0.0,
    },
]


def callbacks_from(analysis: Dict) -> List[cs.NewCallback]:
    return [
        cs.NewCallback(
            to_number=analysis["phone"],
            scheduled_at=T0 + datetime.timedelta(hours=c["in_hours"]),
            source_session_id=analysis["session_id"],
            agent_id=analysis["agent_id"],
            reason=c["reason"],
            summary=analysis["summary"],
            metadata={"sentiment": analysis["sentiment"], "rank": i, "tags": ["analysis"]},
            pipeline_config={"voice": "alloy", "language": "en"},
            idempotency_key=f"{analysis['session_id']}#{i}",
        )
        for i, c in enumerate(analysis["callbacks"])
    ]


class Dialer(cs.Dispatcher):
    """Places calls; the support line is down, and one number is barred."""

    def __init__(self) -> None:
        self.placed: List[str] = []

    def place_call(self, callback: cs.Callback) -> str:
        self.placed.append(callback.id)
        assert isinstance(callback.scheduled_at, datetime.datetime)
        assert callback.metadata.get("tags", ["analysis"]) == ["analysis"]
        if callback.agent_id == "agent_support":
            raise ConnectionError("SIP trunk unreachable")
        if callback.to_number == "+15550000000":
            raise cs.DispatchError.Failed("number is on the do-not-call list")
        return f"sess_call_{len(self.placed)}"


def test_analysis_script_end_to_end(db_location: str) -> None:
    clock = cs.ManualClock(T0)
    store = cs.Store.open(
        db_location,
        cs.StoreOptions(clock=clock, durability=cs.Durability.NORMAL),
    )
    acme = store.organization("org_acme")

    # 1. One batch per analysed call (all or nothing), idempotent on retry.
    created = [cb for a in ANALYSES for cb in acme.create_many(callbacks_from(a))]
    assert len(created) == 3
    retry = acme.create_many(callbacks_from(ANALYSES[0]))
    assert [c.id for c in retry] == [c.id for c in created[:2]]
    barred = acme.create(
        cs.NewCallback(to_number="+15550000000", scheduled_at=T0, source_session_id="sess_004")
    )
    assert barred.metadata == {} and barred.pipeline_config == {}

    first = created[0]
    assert first.status is cs.Status.SCHEDULED
    assert first.scheduled_at == datetime.datetime(2030, 3, 5, 10, tzinfo=UTC)
    assert first.scheduled_at.tzinfo is not None
    assert first.metadata == {"sentiment": 0.8, "rank": 0, "tags": ["analysis"]}
    assert first.created_at == T0

    # 2. List by the session that created them, and page through everything.
    by_session = acme.list(cs.ListQuery(source_session_id="sess_001"))
    assert {c.id for c in by_session.callbacks} == {c.id for c in created[:2]}
    assert by_session.next_cursor is None

    seen: List[str] = []
    query = cs.ListQuery(limit=1, order=cs.Order.SCHEDULED_ASC)
    while True:
        page = acme.list(query)
        seen.extend(c.id for c in page.callbacks)
        if page.next_cursor is None:
            break
        query = cs.ListQuery(limit=1, order=cs.Order.SCHEDULED_ASC, cursor=page.next_cursor)
    assert len(seen) == len(set(seen)) == 4
    assert seen[0] == barred.id  # soonest first

    # 3. The worker: a Python Dispatcher places what is due at 18:00.
    clock.set(T0 + datetime.timedelta(hours=1))
    dialer = Dialer()
    report = store.dispatch_due(dialer, T0 + datetime.timedelta(hours=1), 10)
    assert len(dialer.placed) == 2
    assert report.dispatched == []
    causes = {c.to_number: c.failure_cause for c in report.failed}
    assert causes == {
        "+442071838750": "SIP trunk unreachable",  # the exception's message
        "+15550000000": "number is on the do-not-call list",
    }
    assert all(c.status is cs.Status.FAILED for c in report.failed)

    # Next morning the sales callback goes through.
    report = store.dispatch_due(dialer, T0 + datetime.timedelta(hours=17), 10)
    assert [c.id for c in report.dispatched] == [first.id]
    done = acme.get(first.id)
    assert done.status is cs.Status.DISPATCHED
    assert done.created_session_id == "sess_call_3"
    assert [e.action for e in acme.history(first.id)] == [
        cs.EventAction.CREATE,
        cs.EventAction.CLAIM_DUE,
        cs.EventAction.PLACE_CALL,  # the claim spent, just before the dial
        cs.EventAction.COMPLETE_DISPATCH,
    ]

    # 4. To pandas-ready rows in the API's shape.
    rows = cs.to_records(acme.list(cs.ListQuery(limit=100)))
    assert len(rows) == 4
    for row in rows:
        assert tuple(row) == cs.CALLBACK_KEYS
        json.dumps(row)  # plain JSON values only
    row = next(r for r in rows if r["id"] == first.id)
    assert row["status"] == "dispatched"
    assert row["scheduled_at"] == "2030-03-05T10:00:00Z"
    assert row["metadata"]["sentiment"] == 0.8
    page_dict = cs.page_to_api_dict(acme.list(cs.ListQuery(limit=2)))
    assert set(page_dict) == {"callbacks", "next_cursor"}
    assert isinstance(page_dict["next_cursor"], str)

    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(rows)
    assert list(frame.columns) == list(cs.CALLBACK_KEYS)
    assert frame["status"].value_counts().to_dict() == {"failed": 2, "dispatched": 1, "scheduled": 1}
    counts = {c.status: c.count for c in acme.count_by_status()}
    assert counts[cs.Status.FAILED] == 2


def test_every_operation_is_reachable(store: cs.Store, org: cs.Organization, clock) -> None:
    assert org.id() == "org_acme"
    a = org.create(new(1, reason="r"))
    b = org.create(new(2))
    c = org.create(new(3))
    assert org.cancel(a.id, "asked").cancelled_at == t0
    assert org.cancel(a.id).status is cs.Status.CANCELLED  # no-op
    clock.advance(datetime.timedelta(minutes=5))
    moved = org.reschedule(b.id, t0 + datetime.timedelta(days=1, microseconds=250_000))
    assert moved.scheduled_at == t0 + datetime.timedelta(days=1, microseconds=250_000)
    assert cs.to_api_dict(moved)["scheduled_at"] == "2030-01-02T09:00:00.250Z"
    claim_b = org.dispatch(b.id)
    assert claim_b.callback().status is cs.Status.DISPATCHING and claim_b.id() == b.id
    assert org.complete_dispatch(b.id, "sess_new", claim_b.token()).created_session_id == "sess_new"
    assert org.dispatch(c.id).callback().attempted_at == t0 + datetime.timedelta(minutes=5)
    assert org.fail_dispatch(c.id, "busy line").failure_cause == "busy line"  # no token: as before
    history = org.history(b.id)
    assert [(e._from, e.to) for e in history][-1] == (cs.Status.DISPATCHING, cs.Status.DISPATCHED)
    assert cs.to_api_dict(history[0])["from"] is None

    d = org.create(new(0))
    assert [x.id() for x in store.claim_due(t0 + datetime.timedelta(hours=1), 10)] == [d.id]
    stale = store.recover_stale(t0 + datetime.timedelta(hours=3), datetime.timedelta(hours=1))
    assert [(x.id, x.failure_cause) for x in stale] == [(d.id, cs.dispatch_interrupted())]
    e = org.create(new(0))
    token = org.dispatch(e.id).token()
    placed = store.place_call(DialerOk(), store.claim_by_token(e.id, token))
    assert placed.status is cs.Status.DISPATCHED
    clock.advance(datetime.timedelta(days=30))
    assert store.prune(t0 + datetime.timedelta(days=10)) == 5
    assert store.now() == t0 + datetime.timedelta(days=30, minutes=5)

    key = store.create_api_key("org_acme", "analysis notebook")
    assert key.token and key.key.label == "analysis notebook"
    assert store.authenticate(f"Bearer {key.token}").id() == "org_acme"
    assert store.authenticate(key.token).id() == "org_acme"
    assert [k.id for k in store.list_api_keys("org_acme")] == [key.key.id]
    assert store.revoke_api_key(key.key.id).revoked_at is not None
    with pytest.raises(cs.CallbackStoreError.Unauthorized):
        store.authenticate(f"Bearer {key.token}")
    assert cs.to_api_dict(key)["key"]["revoked_at"] is None
    assert (cs.default_limit(), cs.max_limit()) == (25, 100)
    assert cs.min_timestamp() == datetime.datetime(1970, 1, 1, tzinfo=UTC)
    assert cs.max_timestamp().year == 9999 and cs.max_claim() >= 1


class DialerOk(cs.Dispatcher):
    def place_call(self, callback: cs.Callback) -> str:
        return "sess_ok"


def test_the_same_database_from_two_stores(db_location: str) -> None:
    path = db_location
    one = cs.Store.open(path).organization("org_a")
    two = cs.Store.open(path, cs.StoreOptions(busy_timeout=datetime.timedelta(seconds=2)))
    cb = one.create(cs.NewCallback(to_number="+12015551234", scheduled_at=T0))
    assert two.organization("org_a").get(cb.id) == one.get(cb.id)
    with pytest.raises(cs.CallbackStoreError.NotFound):
        two.organization("org_b").get(cb.id)
