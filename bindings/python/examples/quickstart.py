"""Quickstart: run as `python quickstart.py [path/to/callbacks.db]`."""

import sys
from datetime import datetime, timezone

import callback_store as cs

store = cs.Store.open(sys.argv[1] if len(sys.argv) > 1 else "callbacks.db")
acme = store.organization("org_acme")

# An analysis decided: call this person back on Tuesday at 10.
tuesday = datetime(2030, 3, 5, 10, 0, tzinfo=timezone.utc)
callback = acme.create(
    cs.NewCallback(
        to_number="+12015551234",
        scheduled_at=tuesday,
        source_session_id="sess_123",
        reason="asked to be called back after the meeting",
        metadata={"lead_score": 0.9},
        idempotency_key="sess_123#0",  # a retry returns the same callback
    )
)
print(callback.id, callback.status)  # cb_... Status.SCHEDULED

page = acme.list(cs.ListQuery(source_session_id="sess_123"))
print(cs.to_records(page)[0]["scheduled_at"])  # 2030-03-05T10:00:00Z (pandas.DataFrame-ready rows)


class Dialer(cs.Dispatcher):
    def place_call(self, callback: cs.Callback) -> str:
        # Place the call with your telephony provider; return its session id.
        # Raising fails the callback with the exception's message.
        return f"sess_for_{callback.id}"


# A worker: claims every callback due, places each claim once.
report = store.dispatch_due(Dialer(), tuesday, 100)
print(len(report.dispatched), "dispatched")  # 1 dispatched

# Call someone now: dispatch hands out a claim (the callback and a fencing
# token); placing it spends the claim, then dials.
urgent = acme.create(cs.NewCallback(to_number="+12015559876", scheduled_at=tuesday))
claim = acme.dispatch(urgent.id)
placed = store.place_call(Dialer(), claim)
print(placed.id, placed.status)  # cb_... Status.DISPATCHED
try:
    store.place_call(Dialer(), claim)  # the same claim again: nobody is called
except cs.CallbackStoreError.InvalidTransition as e:
    print(e.code, e)  # INVALID_TRANSITION cannot place_call callback cb_...: stale claim ...

try:
    acme.cancel(callback.id)
except cs.CallbackStoreError.InvalidTransition as e:
    print(e.code, e)  # INVALID_TRANSITION cannot cancel callback cb_...: it is dispatched ...
