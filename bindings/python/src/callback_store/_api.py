"""The API's JSON shape of the records, as plain dicts (pure Python).

`to_api_dict(callback)` is the callback object of the API reference, key for
key in its order, timestamps as the store writes them
(`2019-08-24T14:15:22Z`), statuses as strings. A `Claim` is
`{"callback": {...}, "token": "..."}`. `to_records(page)` gives a list of
those dicts (timestamps stay strings, as in the API's JSON).

`to_dataframe(page)` is for analysis: a pandas DataFrame whose timestamp
columns are timezone-aware datetime64 (UTC), not strings.
"""

from __future__ import annotations

import dataclasses
import datetime
import enum
import importlib
import json
import re
from typing import Any, Dict, List, Optional, Sequence, Union

from ._native import callback_store as _n

CALLBACK_KEYS = (
    "id",
    "organization_id",
    "source_session_id",
    "created_session_id",
    "agent_id",
    "phone_number_id",
    "to_number",
    "from_number",
    "scheduled_at",
    "status",
    "reason",
    "instructions",
    "summary",
    "pipeline_config",
    "metadata",
    "failure_cause",
    "attempted_at",
    "dispatched_at",
    "cancelled_at",
    "created_at",
    "updated_at",
    # The extension keys of DESIGN.md, after the reference's 21, in order.
    "timezone",
    "expires_at",
    "attempt",
    "previous_callback_id",
)

_KEYS = {
    _n.Callback: CALLBACK_KEYS,
    _n.Page: ("callbacks", "next_cursor"),
    _n.CallbackEvent: ("callback_id", "action", "_from", "to", "at", "detail"),
    _n.ApiKey: ("id", "organization_id", "label", "created_at", "revoked_at"),
    _n.CreatedApiKey: ("key", "token"),
    _n.DispatchReport: ("dispatched", "failed"),
    _n.StatusCount: ("status", "count"),
    _n.CallingPolicy: ("timezone", "windows", "max_attempts", "retry_intervals", "retry_on"),
    _n.CallingWindow: ("days", "start", "end"),
}

ApiValue = Union[None, bool, int, float, str, List[Any], Dict[str, Any]]


def format_timestamp(value: datetime.datetime) -> str:
    """RFC 3339 in UTC with `Z`, as the store writes it: no fraction when the
    sub-second part is zero, 3 digits for whole milliseconds, else 6."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"a naive datetime has no place in time: {value!r}")
    t = value.astimezone(datetime.timezone.utc)
    text = (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}"
        f"T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
    )
    if t.microsecond == 0:
        return text + "Z"
    if t.microsecond % 1000 == 0:
        return f"{text}.{t.microsecond // 1000:03d}Z"
    return f"{text}.{t.microsecond:06d}Z"


def to_api_dict(value: Any) -> Any:
    """The API's JSON shape of a record (Callback, Page, CallbackEvent,
    ApiKey, CreatedApiKey, DispatchReport, CallingPolicy, CallingWindow;
    enums as their API strings: `"no_answer"`, `"mon"`), of a Claim
    (`{"callback": {...}, "token": "..."}`), or of a list of them."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, datetime.datetime):
        return format_timestamp(value)
    if isinstance(value, enum.Enum):
        return value.name.lower()
    if isinstance(value, (list, tuple)):
        return [to_api_dict(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_api_dict(v) for k, v in value.items()}
    if isinstance(value, _n.Claim):
        # An object, not a record: its parts are methods, not fields.
        return {"callback": to_api_dict(value.callback()), "token": value.token()}
    keys: Optional[Sequence[str]] = _KEYS.get(type(value))
    if keys is None:
        raise TypeError(f"not a callback_store record: {type(value).__name__}")
    # The Python field `_from` (`from` is a keyword) is the API's `from`.
    return {k.lstrip("_"): to_api_dict(getattr(value, k)) for k in keys}


def page_to_api_dict(page: "_n.Page") -> Dict[str, Any]:
    """`{"callbacks": [...], "next_cursor": "..." | None}`."""
    return to_api_dict(page)


def to_records(value: Union["_n.Page", Sequence["_n.Callback"]]) -> List[Dict[str, Any]]:
    """The callbacks of a page (or a list of callbacks) as a list of API
    dicts, one per row: `pandas.DataFrame(to_records(page))`."""
    callbacks = value.callbacks if isinstance(value, _n.Page) else value
    return [to_api_dict(c) for c in callbacks]


def to_json(value: Any, **dumps_kwargs: Any) -> str:
    """The API's JSON text of a record (see `to_api_dict`)."""
    return json.dumps(to_api_dict(value), **dumps_kwargs)


# A field whose type is a Timestamp, optional or not ("typing.Optional[Timestamp]").
_TIMESTAMP = re.compile(r"\bTimestamp\b")


def to_dataframe(value: Union["_n.Page", Sequence[Any]]) -> Any:
    """A pandas DataFrame of a page's callbacks, or of a list of records of
    one type (Callback, CallbackEvent, ApiKey, ...): one column per field, in
    the record's order, named as in the API (`from`, not `_from`), even when
    there is no row (an empty list has Callback's columns). Timestamp columns
    are timezone-aware datetime64 (UTC), missing ones NaT; statuses and other
    enums are their API strings (`"scheduled"`); metadata stays a dict."""
    try:
        # pandas is optional: only this function needs it (and it ships no
        # type hints, hence import_module rather than an import statement).
        pandas = importlib.import_module("pandas")
    except ImportError as e:
        raise ImportError("callback_store.to_dataframe needs pandas: pip install pandas") from e
    records = list(value.callbacks if isinstance(value, _n.Page) else value)
    cls = type(records[0]) if records else _n.Callback
    if not dataclasses.is_dataclass(cls) or any(type(r) is not cls for r in records):
        kinds = sorted({type(r).__name__ for r in records})
        raise TypeError(f"to_dataframe takes a Page or a list of records of one type, got {kinds}")
    fields = dataclasses.fields(cls)
    columns = {
        f.name.lstrip("_"): [_cell(getattr(r, f.name)) for r in records] for f in fields
    }
    frame = pandas.DataFrame(columns, columns=list(columns))
    for f in fields:
        if _TIMESTAMP.search(str(f.type)):
            name = f.name.lstrip("_")
            # Microseconds, as datetime holds them, whatever pandas would
            # infer (seconds for a column with no value at all).
            frame[name] = pandas.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
    return frame


def _cell(value: Any) -> Any:
    return value.name.lower() if isinstance(value, enum.Enum) else value
