"""One scenario through the Python client that openapi-python-client
generated from openapi.yaml, against a real `callback-store serve`
(scripts/test-clients.sh generates the client, starts the server and runs
this). Every answer is read through the generated models: a model the
generator dropped, or an error answer it left unparsed (`parsed` None),
fails here.

Environment: CALLBACK_STORE_URL, CALLBACK_STORE_TOKEN, CALLBACK_STORE_DB
(the server's SQLite file, locked here to provoke a busy STORAGE_ERROR),
CLIENT_DIR (the folder holding the generated package).
"""

import datetime
import os
import sqlite3
import sys

sys.path.insert(0, os.environ["CLIENT_DIR"])

from callbacks_api_client import AuthenticatedClient  # noqa: E402
from callbacks_api_client.api.callbacks import (  # noqa: E402
    cancel_callback,
    complete_callback,
    create_callback,
    dispatch_callback,
    fail_callback,
    get_callback,
    list_callback_events,
    list_callbacks,
    reschedule_callback,
    retry_callback,
)
from callbacks_api_client.api.calling_policy import (  # noqa: E402
    delete_agent_calling_policy,
    get_agent_calling_policy,
    get_calling_policy,
    put_agent_calling_policy,
    put_calling_policy,
)
from callbacks_api_client.api.changes import list_changes  # noqa: E402
from callbacks_api_client.api.service import get_stats, healthz, metrics  # noqa: E402
from callbacks_api_client.models import (  # noqa: E402
    CallingPolicy,
    CallingPolicyRequest,
    CallingWindow,
    CallingWindowDaysItem,
    CallOutcome,
    CancelRequest,
    Callback,
    CallbackList,
    ChangePage,
    CompleteRequest,
    Error,
    ErrorCode,
    EventList,
    FailRequest,
    Health,
    ListCallbacksOrder,
    NewCallback,
    OrganizationStats,
    RescheduleRequest,
    RetryRequest,
    Status,
)

URL = os.environ["CALLBACK_STORE_URL"]
client = AuthenticatedClient(base_url=URL, token=os.environ["CALLBACK_STORE_TOKEN"])
seen_codes = set()


def ok(response, model, status=200):
    """The answer's status, and its body parsed into the expected model."""
    assert response.status_code == status, (response.status_code, response.content)
    assert isinstance(response.parsed, model), (model, response.parsed, response.content)
    return response.parsed


def error(response, status, code):
    """An error answer, parsed by the generated client into its Error model."""
    assert response.status_code == status, (response.status_code, response.content)
    parsed = response.parsed
    assert isinstance(parsed, Error), (status, code, response.content)
    assert parsed.code == ErrorCode(code), (parsed.code, code)
    assert parsed.error, response.content
    seen_codes.add(code)
    return parsed


def at(days):
    return datetime.datetime(2030, 3, 5, 10, tzinfo=datetime.timezone.utc) + datetime.timedelta(days=days)


assert ok(healthz.sync_detailed(client=client), Health).status == "ok"

# Create with an idempotency key: the retry answers the same callback.
new = NewCallback(to_number="+12015551234", scheduled_at=at(0), source_session_id="sess_py", agent_id="agent_py")
first = ok(create_callback.sync_detailed(client=client, body=new, idempotency_key="py/1"), Callback, 201)
again = ok(create_callback.sync_detailed(client=client, body=new, idempotency_key="py/1"), Callback, 201)
assert again.id == first.id and first.status == Status.SCHEDULED
# The same key with another payload: CONFLICT.
other = NewCallback(to_number="+12015559999", scheduled_at=at(0))
error(create_callback.sync_detailed(client=client, body=other, idempotency_key="py/1"), 409, "CONFLICT")
ids = [first.id] + [
    ok(create_callback.sync_detailed(client=client, body=NewCallback(
        to_number="+12015551234", scheduled_at=at(day), source_session_id="sess_py")), Callback, 201).id
    for day in range(1, 5)
]

# List with filters, walking the cursor two at a time.
walked, cursor = [], None
while True:
    kwargs = {"cursor": cursor} if cursor else {}
    page = ok(list_callbacks.sync_detailed(
        client=client, source_session_id="sess_py", status=Status.SCHEDULED,
        order=ListCallbacksOrder.SCHEDULED_ASC, limit=2, **kwargs), CallbackList)
    walked += [c.id for c in page.callbacks]
    if not page.next_cursor:
        break
    cursor = page.next_cursor
assert walked == ids, (walked, ids)
assert [c.id for c in ok(list_callbacks.sync_detailed(client=client, agent_id="agent_py"), CallbackList).callbacks] == [first.id]

assert ok(get_callback.sync_detailed(first.id, client=client), Callback).to_number == "+12015551234"

cancelled = ok(cancel_callback.sync_detailed(ids[1], client=client, body=CancelRequest(reason="called in")), Callback)
assert cancelled.status == Status.CANCELLED
moved = ok(reschedule_callback.sync_detailed(ids[2], client=client, body=RescheduleRequest(scheduled_at=at(30))), Callback)
assert moved.scheduled_at == at(30)

# Dispatch, then complete with the claim's token.
dispatched = dispatch_callback.sync_detailed(first.id, client=client)
assert ok(dispatched, Callback).status == Status.DISPATCHING
token = dispatched.headers["Claim-Token"]
done = ok(complete_callback.sync_detailed(first.id, client=client, body=CompleteRequest(
    created_session_id="sess_new", claim_token=token)), Callback)
assert done.status == Status.DISPATCHED and done.created_session_id == "sess_new"

# Dispatch, then fail; the follow-up is refused by the default policy (one attempt).
ok(dispatch_callback.sync_detailed(ids[3], client=client), Callback)
failed = ok(fail_callback.sync_detailed(ids[3], client=client, body=FailRequest(failure_cause="no route")), Callback)
assert failed.status == Status.FAILED and failed.failure_cause == "no route"
error(retry_callback.sync_detailed(ids[3], client=client, body=RetryRequest(outcome=CallOutcome.NO_ANSWER)),
      409, "INVALID_TRANSITION")

history = ok(list_callback_events.sync_detailed(first.id, client=client), EventList)
assert [e.action.value for e in history.events] == ["create", "dispatch", "complete_dispatch"], history.events

# The calling policy: the default, then one put and read back.
assert ok(get_calling_policy.sync_detailed(client=client), CallingPolicy).max_attempts == 1
policy = CallingPolicyRequest(
    timezone="America/New_York",
    windows=[CallingWindow(days=[CallingWindowDaysItem.MON, CallingWindowDaysItem.FRI], start="08:00", end="21:00")],
    max_attempts=3, retry_intervals=["2h", "1d"], retry_on=[CallOutcome.NO_ANSWER, CallOutcome.BUSY])
put = ok(put_calling_policy.sync_detailed(client=client, body=policy), CallingPolicy)
assert put.timezone == "America/New_York" and put.windows[0].end == "21:00"
assert ok(get_calling_policy.sync_detailed(client=client), CallingPolicy).to_dict() == put.to_dict()
ok(put_agent_calling_policy.sync_detailed("agent_py", client=client, body=CallingPolicyRequest(max_attempts=2)), CallingPolicy)
assert ok(get_agent_calling_policy.sync_detailed("agent_py", client=client), CallingPolicy).max_attempts == 2
assert delete_agent_calling_policy.sync_detailed("agent_py", client=client).status_code == 204
error(get_agent_calling_policy.sync_detailed("agent_py", client=client), 404, "NOT_FOUND")

# The change feed from the start, page by page, to an empty page.
changes, since = [], "start"
while True:
    page = ok(list_changes.sync_detailed(client=client, since=since, limit=3), ChangePage)
    changes += page.changes
    since = page.next_cursor
    if not page.changes:
        break
assert len(changes) == 5 + 1 + 1 + 2 + 2, [(c.callback_id, c.action) for c in changes]
assert [c.action.value for c in changes if c.callback_id == first.id] == ["create", "dispatch", "complete_dispatch"]

stats = ok(get_stats.sync_detailed(client=client), OrganizationStats)
assert (stats.counts.scheduled, stats.counts.cancelled, stats.counts.dispatched, stats.counts.failed) == (2, 1, 1, 1)

exposition = metrics.sync_detailed(client=client)
assert exposition.status_code == 200 and exposition.parsed.rstrip().endswith("# EOF"), exposition.content

# One error of each code a running server answers, parsed into Error.
error(get_callback.sync_detailed("cb_missing", client=client), 404, "NOT_FOUND")
error(list_callbacks.sync_detailed(client=client, limit=0), 400, "VALIDATION_ERROR")
error(cancel_callback.sync_detailed(first.id, client=client), 409, "INVALID_TRANSITION")
error(create_callback.sync_detailed(client=client, body=NewCallback(
    to_number="+12015551234", scheduled_at=at(0), reason="x" * (300 * 1024))), 413, "VALIDATION_ERROR")
intruder = AuthenticatedClient(base_url=URL, token="cbs_not_a_key")
error(get_callback.sync_detailed(first.id, client=intruder), 401, "UNAUTHORIZED")
# No generated operation sends another method: the raw request, read with the model.
wrong = client.get_httpx_client().request("DELETE", "/v1/callbacks")
assert wrong.status_code == 405 and "GET" in wrong.headers["Allow"]
assert Error.from_dict(wrong.json()).code == ErrorCode.METHOD_NOT_ALLOWED
seen_codes.add("METHOD_NOT_ALLOWED")
# A writer holding the database past the server's busy timeout: 503 STORAGE_ERROR.
lock = sqlite3.connect(os.environ["CALLBACK_STORE_DB"], isolation_level=None)
lock.execute("BEGIN IMMEDIATE")
try:
    busy = create_callback.sync_detailed(client=client, body=NewCallback(to_number="+12015551234", scheduled_at=at(0)))
finally:
    lock.execute("ROLLBACK")
    lock.close()
error(busy, 503, "STORAGE_ERROR")
assert busy.headers["Retry-After"] == "1"

# SCHEMA_ERROR (a database that is no callback store, refused when the
# server opens it) and INTERNAL_ERROR (a bug) have no request that makes a
# running server answer them: the model must still take them.
for code in ("SCHEMA_ERROR", "INTERNAL_ERROR"):
    assert Error.from_dict({"error": "x", "code": code}).code == ErrorCode(code)
documented = {c.value for c in ErrorCode}
assert seen_codes == documented - {"SCHEMA_ERROR", "INTERNAL_ERROR"}, (seen_codes, documented)
print(f"python client: scenario passed ({len(changes)} changes; answered error codes: {', '.join(sorted(seen_codes))})")
