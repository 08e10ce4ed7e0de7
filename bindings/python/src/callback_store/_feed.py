"""The change feed in Python: `changes` with Python's own values, and
`watch`, an iterator over the changes as they commit.

Both are the native `changes` underneath (long polling: a call that finds
nothing waits for the first commit, woken at once by writers of this
process, looking again every 200 ms for other processes' writes). The
iterator reads on from each page's `next_cursor`, which is what makes every
change arrive once and in order: no rule of the feed is repeated here.

- `since` is `"start"`, `"now"`, a cursor string (a change's `cursor` or a
  page's `next_cursor`) or a `Since` (`Since.CURSOR(cursor=...)`).
- `wait` is a `datetime.timedelta` or a number of seconds.
- `org.watch(since, observer)` with a `ChangeObserver` is the native watch
  instead (a thread of the library calls the observer), as in Kotlin and
  Swift; without one, the iterator runs in the caller's thread.
"""

from __future__ import annotations

import datetime
import math
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Union, cast

from ._native.callback_store import (
    Change,
    ChangeObserver,
    ChangePage,
    Organization,
    Since,
    Store,
    Watch,
    default_changes,
    max_changes,
    max_wait,
)

if TYPE_CHECKING:  # as in __init__.py: the generated error classes, typed
    from ._error_types import CallbackStoreError
else:
    from ._native.callback_store import CallbackStoreError

SinceLike = Union[str, Since]
Seconds = Union[int, float, datetime.timedelta]

DEFAULT_LIMIT = default_changes()
"""The changes one call reads when no `limit` is given: the HTTP feed's
page size (100)."""

DEFAULT_POLL = 1.0
"""How long one long poll of `watch` waits, in seconds, when no `wait` is
given: `stop` and `timeout` are noticed within this."""


def _refuse(field: str, rule: str) -> None:
    raise CallbackStoreError.ValidationError("VALIDATION_ERROR", f"{field}: {rule}")


def to_since(value: object) -> Since:
    """`"start"`, `"now"`, a cursor string or a `Since`, as a `Since`."""
    if isinstance(value, Since):
        return value
    if value == "start":
        return cast(Since, Since.START())
    if value == "now":
        return cast(Since, Since.NOW())
    if isinstance(value, str):
        return cast(Since, Since.CURSOR(cursor=value))
    _refuse("since", f'must be "start", "now", a cursor (str) or a callback_store.Since, got {value!r}')
    raise AssertionError  # unreachable: _refuse raised


def to_timedelta(field: str, value: object) -> datetime.timedelta:
    """A duration given as a timedelta or seconds. Negative, infinite or
    non-numeric ones are refused here (uniffi would raise a bare error
    naming nothing); too long ones reach the store, which names its rule."""
    if isinstance(value, datetime.timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        _refuse(field, f"must be a datetime.timedelta or a number of seconds, got {value!r}")
        raise AssertionError
    if not math.isfinite(seconds) or seconds < 0:
        _refuse(field, f"must be a duration of at least 0 seconds, got {value!r}")
    return value if isinstance(value, datetime.timedelta) else datetime.timedelta(seconds=seconds)


def check_limit(value: object) -> int:
    # 0 and 1001 reach the store, which names its rule; -1, 1.5 or "10"
    # would stop in uniffi's check with a bare ValueError or TypeError.
    if isinstance(value, bool) or not isinstance(value, int):
        _refuse("limit", f"must be an integer between 1 and {max_changes()}, got {value!r}")
        raise AssertionError
    if not 0 <= value <= 2**32 - 1:
        _refuse("limit", f"must be between 1 and {max_changes()}, got {value}")
    return value


def install() -> None:
    """Puts `changes` and `watch` on Organization and Store."""
    native_org_changes = Organization.changes
    native_store_changes = Store.changes
    native_watch = Organization.watch

    def wrap_changes(native: Callable[..., ChangePage], doc: Optional[str]) -> Callable[..., ChangePage]:
        def changes(self: Any, since: SinceLike, limit: int = DEFAULT_LIMIT, wait: Seconds = 0) -> ChangePage:
            return native(self, to_since(since), check_limit(limit), to_timedelta("wait", wait))

        changes.__doc__ = (doc or "") + _CHANGES_DOC
        return changes

    def org_watch(
        self: Organization,
        since: SinceLike = "now",
        observer: Optional[ChangeObserver] = None,
        *,
        wait: Seconds = DEFAULT_POLL,
        limit: int = DEFAULT_LIMIT,
        timeout: Optional[Seconds] = None,
        stop: Optional[threading.Event] = None,
    ) -> Union[Iterator[Change], Watch]:
        if observer is not None:
            if not isinstance(observer, ChangeObserver):
                _refuse(
                    "observer",
                    "must be an instance of a callback_store.ChangeObserver subclass that"
                    f" implements on_changes(changes) and on_error(error), got {type(observer).__name__}",
                )
            return native_watch(self, to_since(since), observer)  # type: ignore[no-any-return]
        return follow(self, since, wait=wait, limit=limit, timeout=timeout, stop=stop)

    org_changes = wrap_changes(native_org_changes, native_org_changes.__doc__)
    store_changes = wrap_changes(native_store_changes, native_store_changes.__doc__)
    org_watch.__doc__ = _WATCH_DOC + _OBSERVER_DOC
    for cls, name, func in (
        (Organization, "changes", org_changes),
        (Store, "changes", store_changes),
        (Organization, "watch", org_watch),
    ):
        func.__name__ = name
        func.__qualname__ = f"{cls.__name__}.{name}"
        setattr(cls, name, func)
    # A store's watch is the iterator alone (no native watch of every
    # organization): `follow`, with the store as its source.
    setattr(Store, "watch", follow)


def follow(
    source: Union[Organization, Store],
    since: SinceLike = "now",
    *,
    wait: Seconds = DEFAULT_POLL,
    limit: int = DEFAULT_LIMIT,
    timeout: Optional[Seconds] = None,
    stop: Optional[threading.Event] = None,
) -> Iterator[Change]:
    """`source.watch(since, ...)` without an observer (an Organization's
    changes, or a Store's: every organization's, for operators), with types
    that type checkers see: the iterator over the changes as they commit.

    Its arguments are checked, and its first page read, before it is
    returned: `"now"` is the moment of the call (not of the first `next()`),
    and a bad cursor or limit is raised by the call."""
    poll = to_timedelta("wait", wait).total_seconds()
    longest = max_wait().total_seconds()
    if poll > longest:
        # The first read does not wait (see above), so the store would
        # refuse this wait only at the second: refused now, in its words.
        _refuse("wait", f"must be at most {longest:.0f} seconds, got {poll:.3f}")
    quiet = None if timeout is None else to_timedelta("timeout", timeout).total_seconds()
    if stop is not None and not callable(getattr(stop, "is_set", None)):
        _refuse("stop", f"must be a threading.Event (anything with is_set()), got {stop!r}")
    reader: Any = source  # its `changes` is install()'s, taking str and seconds
    first = reader.changes(since, limit, 0)
    return _pages(reader, first, limit, poll, quiet, stop)


def _pages(
    source: Any,  # as in follow()
    page: ChangePage,
    limit: int,
    poll: float,
    quiet: Optional[float],
    stop: Optional[threading.Event],
) -> Iterator[Change]:
    last_change = time.monotonic()
    while True:
        for change in page.changes:
            if stop is not None and stop.is_set():
                return
            yield change
        if page.changes:
            last_change = time.monotonic()
        if stop is not None and stop.is_set():
            return
        wait = poll
        if quiet is not None:
            left = quiet - (time.monotonic() - last_change)
            if left <= 0:
                return
            wait = min(poll, left)
        page = source.changes(Since.CURSOR(cursor=page.next_cursor), limit, wait)


_CHANGES_DOC = """

Python: `since` is "start", "now", a cursor string or a Since; `limit`
defaults to 100; `wait` is a timedelta or seconds (0: answer at once).
"""

_WATCH_DOC = """

Iterates over the changes after `since` ("now" by default, "start", a
cursor string or a Since) as they commit, oldest first, each once, in this
thread: `for change in org.watch(): ...`. It never ends by itself unless
`timeout` (seconds or a timedelta) passes without a change, or the
threading.Event `stop` is set; each long poll waits at most `wait` (1 s by
default), so both are noticed within it. `limit` (1 to 1000) is how many
changes one call reads. To resume later without a gap, keep the `cursor`
of the last change handled and pass it as `since`. A bad `since`, `limit`
or `wait` is raised by this call, not by the first `next()`; a store error
is raised by `next()` and ends the iteration.
"""

_OBSERVER_DOC = """
With an `observer` (a ChangeObserver), the native watch instead: a thread
of the library calls `observer.on_changes(changes)` in order, each change
once, until the returned Watch's `cancel()` (or the Watch released), a store
error (`observer.on_error(error)`, then no more calls) or an exception in
`on_changes`. `wait`, `limit`, `timeout` and `stop` are the iterator's.
"""
