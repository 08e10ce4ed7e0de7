"""Scheduled callbacks for AI voice agents, over SQLite.

    import callback_store as cs
    store = cs.Store.open("callbacks.db")       # or cs.Store.open_in_memory()
    acme = store.organization("org_acme")
    cb = acme.create(cs.NewCallback(to_number="+12015551234",
                                    scheduled_at=datetime(2030, 3, 5, 10, tzinfo=timezone.utc)))

Records are typed (`Callback`, `Page`, ...); timestamps are timezone-aware
`datetime` (naive ones are refused with VALIDATION_ERROR); metadata and
pipeline_config are `dict`. Every error is a `CallbackStoreError.<Code>`
whose `.code` is the stable code string (`"NOT_FOUND"`, ...). `to_api_dict`,
`page_to_api_dict` and `to_records` give the API's JSON shape (pandas-ready).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._native import callback_store as _native
from ._native.callback_store import (
    ApiKey,
    Callback,
    CallbackEvent,
    CreatedApiKey,
    Dispatcher,
    DispatchReport,
    Durability,
    EventAction,
    InternalError,
    JsonObject,
    ListQuery,
    ManualClock,
    NewCallback,
    Order,
    Organization,
    Page,
    Status,
    StatusCount,
    Store,
    StoreOptions,
    Timestamp,
    default_limit,
    dispatch_interrupted,
    max_claim,
    max_limit,
    max_timestamp,
    min_timestamp,
)

if TYPE_CHECKING:  # the generated error classes, as type checkers can see them
    from ._error_types import CallbackStoreError, DispatchError
else:
    from ._native.callback_store import CallbackStoreError, DispatchError

from ._api import (
    CALLBACK_KEYS,
    format_timestamp,
    page_to_api_dict,
    to_api_dict,
    to_json,
    to_records,
)

__all__ = [
    "ApiKey",
    "CALLBACK_KEYS",
    "Callback",
    "CallbackEvent",
    "CallbackStoreError",
    "CreatedApiKey",
    "DispatchError",
    "DispatchReport",
    "Dispatcher",
    "Durability",
    "EventAction",
    "InternalError",
    "JsonObject",
    "ListQuery",
    "ManualClock",
    "NewCallback",
    "Order",
    "Organization",
    "Page",
    "Status",
    "StatusCount",
    "Store",
    "StoreOptions",
    "Timestamp",
    "default_limit",
    "dispatch_interrupted",
    "format_timestamp",
    "max_claim",
    "max_limit",
    "max_timestamp",
    "min_timestamp",
    "page_to_api_dict",
    "to_api_dict",
    "to_json",
    "to_records",
]


# Errors: `str(e)` is the message (not "code=..., reason=..."), `.message`
# an alias of `.reason`.
def _error_str(self: Exception) -> str:
    reason = getattr(self, "reason", None)
    return reason if isinstance(reason, str) else Exception.__str__(self)


for _cls in (CallbackStoreError, DispatchError):
    setattr(_cls, "__str__", _error_str)
    setattr(_cls, "message", property(_error_str))


# A Dispatcher that raises any exception fails the callback with the
# exception's message (`str(e)`) as failure_cause: uniffi alone would hand
# Rust `repr(e)`. The generated trait-call helper is wrapped to turn such an
# exception into `DispatchError.Failed(str(e))` first.
def _wrap_trait_call(original):  # type: ignore[no-untyped-def]
    def call_with_error(call_status, make_call, write_return_value, error_type, lower_error):  # type: ignore[no-untyped-def]
        if error_type is not DispatchError:
            return original(call_status, make_call, write_return_value, error_type, lower_error)

        def make_call_with_message():  # type: ignore[no-untyped-def]
            try:
                return make_call()
            except DispatchError:
                raise
            except Exception as e:
                raise DispatchError.Failed(str(e) or type(e).__name__) from e

        return original(call_status, make_call_with_message, write_return_value, error_type, lower_error)

    return call_with_error


_native._uniffi_trait_interface_call_with_error = _wrap_trait_call(  # type: ignore[attr-defined]
    _native._uniffi_trait_interface_call_with_error  # type: ignore[attr-defined]
)
