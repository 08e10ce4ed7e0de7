"""A short run through the Python client that openapi-generator built from
openapi.yaml, against a real `callback-store serve` (scripts/test-clients.sh
runs it after scenario.py and scenario.ts, which drive the whole API through
the other two clients): the calls openapi-python-client once dropped
(failCallback, the policy PUT) and error answers read as the Error model.

Environment: CALLBACK_STORE_URL, CALLBACK_STORE_TOKEN, CLIENT_DIR (the folder
holding the generated package).
"""

import datetime
import os
import sys

sys.path.insert(0, os.environ["CLIENT_DIR"])

from callbacks_generated import (  # noqa: E402
    ApiClient,
    CallbacksApi,
    CallingPolicyApi,
    CallingPolicyRequest,
    Configuration,
    Error,
    FailRequest,
    NewCallback,
)
from callbacks_generated.exceptions import ApiException  # noqa: E402

config = Configuration(host=os.environ["CALLBACK_STORE_URL"], access_token=os.environ["CALLBACK_STORE_TOKEN"])
api_client = ApiClient(config)
callbacks, policies = CallbacksApi(api_client), CallingPolicyApi(api_client)

when = datetime.datetime(2030, 3, 5, 10, tzinfo=datetime.timezone.utc)
new = NewCallback(to_number="+12015551234", scheduled_at=when, source_session_id="sess_gen")
created = callbacks.create_callback(new, idempotency_key="gen/1")
assert callbacks.create_callback(new, idempotency_key="gen/1").id == created.id
page = callbacks.list_callbacks(source_session_id="sess_gen", limit=1)
assert [c.id for c in page.callbacks] == [created.id] and page.next_cursor is None, page

dispatched = callbacks.dispatch_callback_with_http_info(created.id)
assert dispatched.data.status == "dispatching", dispatched.data
# The headers as received (HTTP/1.1 from hyper: lower-case names).
token = {name.lower(): value for name, value in dispatched.headers.items()}["claim-token"]
failed = callbacks.fail_callback(created.id, FailRequest(failure_cause="no route", claim_token=token))
assert (failed.status, failed.failure_cause) == ("failed", "no route"), failed
actions = [e.action for e in callbacks.list_callback_events(created.id).events]
assert actions == ["create", "dispatch", "fail_dispatch"], actions

put = policies.put_calling_policy(CallingPolicyRequest(timezone="Europe/London", max_attempts=2))
assert (put.timezone, put.max_attempts, put.retry_intervals) == ("Europe/London", 2, ["1h"]), put


def error_of(call, status, code):
    """The ApiException a call raises, its body read as the Error model."""
    try:
        call()
    except ApiException as e:
        parsed = Error.from_json(e.body)
        assert (e.status, parsed.code) == (status, code), (e.status, e.body)
        return parsed
    raise AssertionError(f"no {status} {code}")


error_of(lambda: callbacks.get_callback("cb_missing"), 404, "NOT_FOUND")
error_of(lambda: callbacks.cancel_callback(created.id), 409, "INVALID_TRANSITION")
error_of(lambda: callbacks.create_callback(NewCallback(to_number="+12015559999", scheduled_at=when),
                                           idempotency_key="gen/1"), 409, "CONFLICT")
print("openapi-generator client: smoke run passed")
