"""Converters of the custom types, named in uniffi.toml.

Timestamps and JSON objects cross the FFI as text and are parsed in Rust, so
that a bad value is refused by the store's own rules as a VALIDATION_ERROR
naming the field. A value that cannot even become text (a naive datetime, a
set inside metadata) is sent as NUL + the reason, which Rust reports the same
way. These functions never raise.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any, Dict

_REFUSED = "\0"
_UTC = datetime.timezone.utc


def lower_timestamp(value: Any) -> str:
    """An aware datetime as RFC 3339 text; anything else as a refusal."""
    if not isinstance(value, datetime.datetime):
        return (
            _REFUSED
            + f"must be a timezone-aware datetime.datetime, got {type(value).__name__}"
        )
    try:
        if value.tzinfo is None or value.utcoffset() is None:
            return _REFUSED + (
                f"must be a timezone-aware datetime, got a naive one ({value.isoformat()});"
                " give it a tzinfo, e.g. datetime.timezone.utc"
            )
        return value.isoformat()
    except Exception as e:  # a broken tzinfo
        return _REFUSED + f"must be a timezone-aware datetime ({e})"


def lift_timestamp(text: str) -> datetime.datetime:
    """RFC 3339 text from the store (always UTC, `Z`) as an aware datetime."""
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.datetime.fromisoformat(text).astimezone(_UTC)


def lower_json(value: Any) -> str:
    """A dict as JSON text; anything else as a refusal."""
    if not isinstance(value, Mapping):
        return _REFUSED + f"must be a JSON object (a dict), got {type(value).__name__}"
    try:
        return json.dumps(dict(value), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        return _REFUSED + f"must be JSON-serializable ({e})"


def lift_json(text: str) -> Dict[str, Any]:
    return json.loads(text)
