"""Scheduled callbacks for AI voice agents, over SQLite or PostgreSQL.

    import callback_store as cs
    store = cs.Store.open("callbacks.db")       # or cs.Store.open_in_memory()
    # or cs.Store.open("postgres://user@host/db", cs.StoreOptions(max_connections=10))
    acme = store.organization("org_acme")
    cb = acme.create(cs.NewCallback(to_number="+12015551234",
                                    scheduled_at=datetime(2030, 3, 5, 10, tzinfo=timezone.utc)))

A worker takes due callbacks with `store.claim_due(now, limit)` (or one now
with `org.dispatch(id)`) and gets `Claim`s: the callback plus a fencing
token, the right to place its call once. `store.place_call(dispatcher,
claim)` spends the claim before the dispatcher dials, so a claim placed
twice, or after `recover_stale` failed its callback, or with a forged token
is refused (INVALID_TRANSITION) and nobody is called. A claim is a separate
type that only the store hands out, not a record: a record anyone can build
would let a dialer call whoever it names, as many times as it is passed.
`store.claim_by_token(id, token)` gives the live claim back to another
process.

Records are typed (`Callback`, `Page`, ...); timestamps are timezone-aware
`datetime` (naive ones are refused with VALIDATION_ERROR); metadata and
pipeline_config are `dict`. Every error is a `CallbackStoreError.<Code>`
whose `.code` is the stable code string (`"NOT_FOUND"`, ...).

Records are dataclasses: `repr`, `==`, `dataclasses.asdict` and
`pandas.DataFrame(page.callbacks)` see every field. `to_dataframe(page)`
gives a DataFrame with timezone-aware (UTC) datetime64 columns for the
timestamps (it needs pandas; importing this package does not).
`to_api_dict`, `page_to_api_dict` and `to_records` give the API's JSON shape:
timestamps as RFC 3339 strings, statuses as lower-case strings; a callback's
21 keys of the API reference, then `timezone`, `expires_at`, `attempt` and
`previous_callback_id`.

Calling policy: `org.set_calling_policy(policy)` (start from
`cs.default_calling_policy()` and change what differs: a `CallingPolicy` of
`timezone`, `windows` of `CallingWindow(days=[cs.Weekday.MON, ...],
start="08:00", end="21:00")`, `max_attempts`, `retry_intervals`, `retry_on`
of `CallOutcome`s), `org.set_agent_calling_policy(agent_id, policy)`,
`org.retry(id, cs.CallOutcome.NO_ANSWER)` for the next attempt,
`store.expire_overdue(now, limit)` for callbacks past their `expires_at`.

The change feed: `for change in org.watch(): ...` yields the events of the
organization's callbacks as they commit, in order, each once (`since="now"`,
`"start"` or a saved `change.cursor`); `org.changes(since, limit, wait)`
reads one page (long polling); `org.watch(since, observer)` with a
`ChangeObserver` is the library's own watch thread. See _feed.py.

One SQLite per file per process: do not open the store's file for writing
with Python's own `sqlite3` module in the process that has the store open.
The package carries its own copy of SQLite, and two copies of SQLite in one
process do not see each other's locks: the store's writes can be lost. Read
through the store instead, or use `sqlite3` from a separate process. A
read-only connection in the same process
(`sqlite3.connect("file:callbacks.db?mode=ro", uri=True)`) loses nothing by
itself, but closing it drops the store's locks too: use it only when no
other process opens the file while the store is open.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import functools

from . import _buffers, _feed, _pythonic
from ._native import callback_store as _native
from ._native.callback_store import (
    ApiKey,
    CallOutcome,
    Callback,
    CallbackEvent,
    CallingPolicy,
    Change,
    ChangeObserver,
    ChangePage,
    CallingWindow,
    Claim,
    Completion,
    CompletionOutcome,
    CreatedApiKey,
    Dispatcher,
    DispatchOptions,
    DispatchReport,
    Durability,
    EventAction,
    InternalError,
    ItemError,
    JsonObject,
    ListQuery,
    ManualClock,
    NewCallback,
    Order,
    Organization,
    Page,
    Since,
    Status,
    StatusCount,
    Store,
    StoreOptions,
    Timestamp,
    Watch,
    Weekday,
    default_calling_policy,
    default_changes,
    default_limit,
    dispatch_interrupted,
    expired,
    max_changes,
    max_claim,
    max_concurrency,
    max_limit,
    max_timestamp,
    max_wait,
    min_timestamp,
    tzdb_version,
)

if TYPE_CHECKING:  # the generated error classes, as type checkers can see them
    from ._error_types import CallbackStoreError, DispatchError, ObserverError
else:
    from ._native.callback_store import CallbackStoreError, DispatchError, ObserverError

from ._api import (
    CALLBACK_KEYS,
    format_timestamp,
    page_to_api_dict,
    to_api_dict,
    to_dataframe,
    to_json,
    to_records,
)
from ._feed import follow, to_since

__all__ = [
    "ApiKey",
    "CALLBACK_KEYS",
    "CallOutcome",
    "Callback",
    "CallbackEvent",
    "CallbackStoreError",
    "CallingPolicy",
    "CallingWindow",
    "Change",
    "ChangeObserver",
    "ChangePage",
    "Claim",
    "Completion",
    "CompletionOutcome",
    "CreatedApiKey",
    "DispatchError",
    "DispatchOptions",
    "DispatchReport",
    "Dispatcher",
    "Durability",
    "EventAction",
    "InternalError",
    "ItemError",
    "JsonObject",
    "ListQuery",
    "ManualClock",
    "NewCallback",
    "ObserverError",
    "Order",
    "Organization",
    "Page",
    "Since",
    "Status",
    "StatusCount",
    "Store",
    "StoreOptions",
    "Timestamp",
    "Watch",
    "Weekday",
    "default_calling_policy",
    "default_changes",
    "default_limit",
    "dispatch_interrupted",
    "expired",
    "follow",
    "format_timestamp",
    "max_changes",
    "max_claim",
    "max_concurrency",
    "max_limit",
    "max_timestamp",
    "max_wait",
    "min_timestamp",
    "page_to_api_dict",
    "to_api_dict",
    "to_dataframe",
    "to_json",
    "to_records",
    "to_since",
    "tzdb_version",
]


# Errors: `str(e)` is the message (not "code=..., reason=..."), `.message`
# an alias of `.reason`.
def _error_str(self: Exception) -> str:
    reason = getattr(self, "reason", None)
    return reason if isinstance(reason, str) else Exception.__str__(self)


for _cls in (CallbackStoreError, DispatchError, ObserverError):
    setattr(_cls, "__str__", _error_str)
    setattr(_cls, "message", property(_error_str))


# A Dispatcher that raises any exception fails the callback with the
# exception's message (`str(e)`) as failure_cause: uniffi alone would hand
# Rust `repr(e)`. The generated trait-call helper is wrapped to turn such an
# exception into `DispatchError.Failed(str(e))` first (and, for a
# ChangeObserver, `ObserverError.Stop(str(e))`).
_FOREIGN_ERRORS = {DispatchError: DispatchError.Failed, ObserverError: ObserverError.Stop}


def _wrap_trait_call(original):  # type: ignore[no-untyped-def]
    def call_with_error(call_status, make_call, write_return_value, error_type, lower_error):  # type: ignore[no-untyped-def]
        wrap = _FOREIGN_ERRORS.get(error_type)
        if wrap is None:
            return original(call_status, make_call, write_return_value, error_type, lower_error)

        def make_call_with_message():  # type: ignore[no-untyped-def]
            try:
                return make_call()
            except error_type:
                raise
            except Exception as e:
                raise wrap(str(e) or type(e).__name__) from e

        return original(call_status, make_call_with_message, write_return_value, error_type, lower_error)

    return call_with_error


_native._uniffi_trait_interface_call_with_error = _wrap_trait_call(  # type: ignore[attr-defined]
    _native._uniffi_trait_interface_call_with_error  # type: ignore[attr-defined]
)

# Records cross the FFI through _buffers' builder, stream and string
# converter instead of uniffi's slower generated ones (same bytes); the import
# fails if the generated runtime is not the uniffi version they were written
# against. See _buffers.py.
_buffers.install(_native)

# Records become dataclasses with their fields declared, signatures show the
# real defaults (None) instead of uniffi's sentinel, and a copy of an object
# is the object (never a second owner of its handle). See _pythonic.py.
_pythonic.install(_native)

# `changes` and `watch` take "start", "now" or a cursor string and seconds;
# `watch` without an observer is an iterator. See _feed.py.
_feed.install()


# uniffi checks a custom-type argument by lowering it and checking the text,
# then lowers it again to write it: every metadata and pipeline_config dict
# went through json.dumps twice (a quarter of the cost of lowering a
# NewCallback). The check cannot fail here: _convert's lowerings never raise
# and always return text (a value they refuse is sent as NUL + the reason,
# which Rust turns into a VALIDATION_ERROR naming the field), so it is skipped.
def _nothing_to_check(value: object) -> None:
    return None


for _custom in (_native._UniffiFfiConverterTypeJsonObject, _native._UniffiFfiConverterTypeTimestamp):  # type: ignore[attr-defined]
    setattr(_custom, "check_lower", staticmethod(_nothing_to_check))


# Arguments uniffi checks in Python before the call (an enum, an unsigned
# integer) would otherwise fail with a bare ValueError or TypeError that
# names neither the field nor the rule: `ListQuery(status="pending")`,
# `ListQuery(limit=-1)`, `claim_due(now, -1)`. They are VALIDATION_ERRORs
# naming the field, as every other bad value is.
_U32_MAX = 2**32 - 1
_MISSING = object()  # an argument not given: uniffi's own TypeError says so


def _refuse(field: str, rule: str) -> None:
    raise CallbackStoreError.ValidationError("VALIDATION_ERROR", f"{field}: {rule}")  # type: ignore[call-arg]


def _check_u32(field: str, value: object, high: int) -> None:
    if value is _MISSING:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        _refuse(field, f"must be an integer between 1 and {high}, got {value!r}")
    elif not 0 <= value <= _U32_MAX:  # inside u32, the store's own rule speaks
        _refuse(field, f"must be between 1 and {high}, got {value}")


def _check_list_query(query: object) -> None:
    if not isinstance(query, ListQuery):
        return  # uniffi refuses a query of another type
    for field, kind in (("status", Status), ("order", Order)):
        value = getattr(query, field)
        if value is not None and not isinstance(value, kind):
            names = ", ".join(m.name.lower() for m in kind)
            _refuse(field, f"must be a callback_store.{kind.__name__} ({names}), got {value!r}")
    if query.limit is not None:
        _check_u32("limit", query.limit, max_limit())


def _checked(method, check):  # type: ignore[no-untyped-def]
    # wraps: help() and inspect.signature show the method's own parameters
    # (through __wrapped__ and the __signature__ _pythonic gave it), not
    # (*args, **kwargs).
    @functools.wraps(method)
    def call(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        check(*args, **kwargs)
        return method(self, *args, **kwargs)

    return call


def _list_args(query: object = _MISSING) -> None:
    _check_list_query(query)


def _claim_args(now: object = _MISSING, limit: object = _MISSING) -> None:
    _check_u32("limit", limit, max_claim())


def _kind(value: object) -> str:
    if isinstance(value, Callback):
        status = getattr(value.status, "name", value.status)
        return f"a Callback record (status {str(status).lower()}), which is not a claim"
    return "None" if value is None else f"a {type(value).__name__}"


# What a claim is, in every refusal of a value that is not one.
_HOW_TO_CLAIM = (
    "only the store hands claims out: Store.claim_due, Organization.dispatch"
    " or Store.claim_by_token(id, token)"
)


def _check_claim(value: object) -> None:
    # uniffi would raise a bare TypeError for anything but a Claim. A Claim
    # without a handle was made by Claim.__new__, bypassing the store: it
    # holds no claim at all, and lowering it would fail in the middle.
    if value is _MISSING:
        return
    if not isinstance(value, Claim) or getattr(value, "_handle", None) is None:
        _refuse("claim", f"must be a callback_store.Claim ({_HOW_TO_CLAIM}), got {_kind(value)}")


def _check_dispatcher(value: object) -> None:
    if value is not _MISSING and not isinstance(value, Dispatcher):
        _refuse(
            "dispatcher",
            "must be an instance of a callback_store.Dispatcher subclass that"
            f" implements place_call(callback) -> str, got {_kind(value)}",
        )


def _check_str(field: str, value: object, optional: bool = False) -> None:
    if value is _MISSING or (optional and value is None) or isinstance(value, str):
        return
    hint = ": pass claim.token()" if isinstance(value, Claim) else ""
    _refuse(field, f"must be a str{' or None' if optional else ''}, got {_kind(value)}{hint}")


def _dispatch_due_args(dispatcher: object = _MISSING, now: object = _MISSING, limit: object = _MISSING) -> None:
    _check_u32("limit", limit, max_claim())
    _check_dispatcher(dispatcher)


def _dispatch_due_with_args(
    dispatcher: object = _MISSING, now: object = _MISSING, limit: object = _MISSING, options: object = _MISSING
) -> None:
    _check_u32("limit", limit, max_claim())
    _check_dispatcher(dispatcher)
    if isinstance(options, DispatchOptions):
        # 0 and 257 reach the store, which names its rule; -1 or 1.5 would
        # stop in uniffi's check with a bare ValueError or TypeError.
        _check_u32("concurrency", options.concurrency, max_concurrency())


def _complete_many_args(completions: object = _MISSING) -> None:
    # Each item is checked before anything crosses: a bad one found while
    # lowering the list would leave uniffi's TypeError, naming no item.
    if completions is _MISSING:
        return
    if not isinstance(completions, (list, tuple)):
        _refuse("completions", f"must be a list of callback_store.Completion, got {_kind(completions)}")
        return
    for i, item in enumerate(completions):
        if not isinstance(item, Completion):
            _refuse(f"completions[{i}]", f"must be a callback_store.Completion(claim, created_session_id), got {_kind(item)}")
        claim = item.claim
        if not isinstance(claim, Claim) or getattr(claim, "_handle", None) is None:
            _refuse(f"completions[{i}].claim", f"must be a callback_store.Claim ({_HOW_TO_CLAIM}), got {_kind(claim)}")
        if not isinstance(item.created_session_id, str):
            field = f"completions[{i}].created_session_id"
            _refuse(field, f"must be the str session id of the call placed, got {_kind(item.created_session_id)}")


def _place_call_args(dispatcher: object = _MISSING, claim: object = _MISSING) -> None:
    _check_dispatcher(dispatcher)
    _check_claim(claim)


def _claim_by_token_args(id: object = _MISSING, token: object = _MISSING) -> None:
    _check_str("id", id)
    _check_str("token", token)


def _complete_args(id: object = _MISSING, created_session_id: object = _MISSING, claim_token: object = None) -> None:
    _check_str("claim_token", claim_token, optional=True)


def _fail_args(id: object = _MISSING, failure_cause: object = _MISSING, claim_token: object = None) -> None:
    _check_str("claim_token", claim_token, optional=True)


def _check_options(options: object) -> None:
    # max_connections (PostgreSQL only) is a u32: a negative or non-integer
    # one is a VALIDATION_ERROR naming it, on either backend.
    if isinstance(options, StoreOptions) and options.max_connections is not None:
        _check_u32("max_connections", options.max_connections, _U32_MAX)


def _open_args(path: object = _MISSING, options: object = None) -> None:
    _check_options(options)


def _open_in_memory_args(options: object = None) -> None:
    _check_options(options)


def _expire_overdue_args(now: object = _MISSING, limit: object = _MISSING) -> None:
    _check_u32("limit", limit, max_claim())


def _check_enum(field: str, value: object, kind: type) -> None:
    if value is _MISSING or isinstance(value, kind):
        return
    names = ", ".join(m.name.lower() for m in kind)  # type: ignore[attr-defined]
    _refuse(field, f"must be a callback_store.{kind.__name__} ({names}), got {value!r}")


def _retry_args(id: object = _MISSING, outcome: object = _MISSING) -> None:
    _check_enum("outcome", outcome, CallOutcome)


def _check_policy(policy: object) -> None:
    # A day, an outcome or max_attempts that uniffi would refuse with a bare
    # TypeError or ValueError is a VALIDATION_ERROR naming its field, as
    # the store names the fields it checks (`windows[0].end`).
    if not isinstance(policy, CallingPolicy):
        return  # uniffi refuses a policy of another type
    _check_u32("max_attempts", policy.max_attempts, 20)
    for i, window in enumerate(policy.windows if isinstance(policy.windows, list) else []):
        if isinstance(window, CallingWindow) and isinstance(window.days, list):
            for j, day in enumerate(window.days):
                _check_enum(f"windows[{i}].days[{j}]", day, Weekday)
    for i, outcome in enumerate(policy.retry_on if isinstance(policy.retry_on, list) else []):
        _check_enum(f"retry_on[{i}]", outcome, CallOutcome)


def _set_policy_args(policy: object = _MISSING) -> None:
    _check_policy(policy)


def _set_agent_policy_args(agent_id: object = _MISSING, policy: object = _MISSING) -> None:
    _check_policy(policy)


def _no_constructor(self: object, *args: object, **kwargs: object) -> None:
    _refuse("claim", f"a Claim cannot be built by hand; {_HOW_TO_CLAIM}")


setattr(Organization, "list", _checked(Organization.list, _list_args))
setattr(Store, "claim_due", _checked(Store.claim_due, _claim_args))
setattr(Store, "dispatch_due", _checked(Store.dispatch_due, _dispatch_due_args))
setattr(Store, "place_call", _checked(Store.place_call, _place_call_args))
setattr(Store, "dispatch_due_with", _checked(Store.dispatch_due_with, _dispatch_due_with_args))
setattr(Store, "complete_many", _checked(Store.complete_many, _complete_many_args))
setattr(Store, "claim_by_token", _checked(Store.claim_by_token, _claim_by_token_args))
setattr(Organization, "complete_dispatch", _checked(Organization.complete_dispatch, _complete_args))
setattr(Organization, "fail_dispatch", _checked(Organization.fail_dispatch, _fail_args))
setattr(Store, "expire_overdue", _checked(Store.expire_overdue, _expire_overdue_args))
setattr(Organization, "retry", _checked(Organization.retry, _retry_args))
setattr(Organization, "set_calling_policy", _checked(Organization.set_calling_policy, _set_policy_args))
setattr(
    Organization,
    "set_agent_calling_policy",
    _checked(Organization.set_agent_calling_policy, _set_agent_policy_args),
)
setattr(Claim, "__init__", _no_constructor)
# The constructors are classmethods: the check wraps the function inside.
setattr(Store, "open", classmethod(_checked(vars(Store)["open"].__func__, _open_args)))
setattr(Store, "open_in_memory", classmethod(_checked(vars(Store)["open_in_memory"].__func__, _open_in_memory_args)))
