"""The change feed from Python (issue 15): `changes` (one page, long
polling), the `watch()` iterator over it, and the native watch with a
`ChangeObserver`. Every change is seen once and in commit order, across
store handles and processes; a saved cursor resumes without a gap; bad
input is a VALIDATION_ERROR naming its field. On both backends (conftest)."""

from __future__ import annotations

import datetime
import inspect
import subprocess
import sys
import threading
import time
from itertools import islice
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from conftest import new

import callback_store as cs

WORKER = Path(__file__).with_name("feed_worker.py")


def key(change: cs.Change) -> Tuple[str, cs.EventAction]:
    return change.event.callback_id, change.event.action


def read_all(source: object, since: str = "start") -> List[cs.Change]:
    """Every change after `since`, page by page, without waiting."""
    out: List[cs.Change] = []
    page = source.changes(since, 7)  # type: ignore[attr-defined]
    while page.changes:
        out += page.changes
        page = source.changes(page.next_cursor, 7)  # type: ignore[attr-defined]
    return out


def create_and_cancel(org: cs.Organization, n: int) -> List[str]:
    ids = []
    for _ in range(n):
        callback = org.create(new())
        org.cancel(callback.id)
        ids.append(callback.id)
    return ids


def test_changes_are_the_histories_events_in_commit_order(org: cs.Organization) -> None:
    ids = create_and_cancel(org, 3)
    changes = read_all(org)
    assert [key(c) for c in changes] == [
        (i, action) for i in ids for action in (cs.EventAction.CREATE, cs.EventAction.CANCEL)
    ]
    for i in ids:
        assert [c.event for c in changes if c.event.callback_id == i] == org.history(i)
    assert all(c.organization_id == "org_acme" for c in changes)
    assert len({c.cursor for c in changes}) == len(changes)


def test_the_iterator_sees_each_change_once_in_order_while_another_thread_writes(org: cs.Organization) -> None:
    changes = org.watch(timeout=10)  # "now": pinned by this call, before any write below
    writer = threading.Thread(target=create_and_cancel, args=(org, 20))
    writer.start()
    seen = list(islice(changes, 40))
    writer.join()
    assert len(seen) == 40 and len(set(map(key, seen))) == 40
    assert seen == read_all(org)  # everything since the start: the same, in the same order


def test_two_store_handles_on_one_database_see_each_others_changes_once(db_location: str) -> None:
    a = cs.Store.open(db_location).organization("org_acme")
    b = cs.Store.open(db_location).organization("org_acme")
    changes = a.watch(timeout=10)
    ids = create_and_cancel(b, 5) + create_and_cancel(a, 5)
    seen = list(islice(changes, 20))
    assert [key(c) for c in seen] == [
        (i, action) for i in ids for action in (cs.EventAction.CREATE, cs.EventAction.CANCEL)
    ]


def test_changes_of_two_writer_processes_are_seen_once_each_in_commit_order(db_location: str) -> None:
    per_writer = 100
    reader = cs.Store.open(db_location).organization("org_acme")
    changes = reader.watch(timeout=60)
    writers = [
        subprocess.Popen(
            [sys.executable, str(WORKER), db_location, "org_acme", str(per_writer)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for w in writers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    seen = list(islice(changes, 4 * per_writer))
    created: Dict[int, List[str]] = {}
    for n, w in enumerate(writers):
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        lines = out.split()
        assert lines[-1] == "done"
        created[n] = lines[:-1]
    assert len(seen) == 4 * per_writer, "the watch ended before every change arrived"
    assert len(set(map(key, seen))) == len(seen), "a change was seen twice"
    # Each writer's own changes in the order it made them, interleaved with
    # the other's as they committed; and the same as a later full read.
    for ids in created.values():
        mine = [key(c) for c in seen if c.event.callback_id in set(ids)]
        assert mine == [(i, a) for i in ids for a in (cs.EventAction.CREATE, cs.EventAction.CANCEL)]
    assert seen == read_all(reader)


def test_resuming_from_a_saved_cursor_misses_nothing_and_repeats_nothing(org: cs.Organization) -> None:
    create_and_cancel(org, 4)
    first = list(islice(org.watch("start", timeout=5), 3))
    saved = first[-1].cursor
    create_and_cancel(org, 4)
    rest = list(org.watch(saved, timeout=0.5))
    assert first + rest == read_all(org)
    assert len(rest) == 16 - 3


def test_since_now_starts_at_the_call_not_at_the_first_next(org: cs.Organization) -> None:
    before = org.create(new())
    changes = org.watch("now", timeout=5)
    after = org.create(new())
    assert next(changes).event.callback_id == after.id
    assert before.id != after.id


def test_a_cursor_of_another_organization_is_a_validation_error(store: cs.Store, org: cs.Organization) -> None:
    org.create(new())
    other = store.organization("org_other").changes("start").next_cursor
    store_wide = store.changes("start").next_cursor
    for cursor in (other, store_wide, "not-a-cursor", ""):
        with pytest.raises(cs.CallbackStoreError.ValidationError) as raised:
            org.changes(cursor)
        assert raised.value.code == "VALIDATION_ERROR" and str(raised.value).startswith("since"), cursor
        # Raised by watch() itself, not by the first next().
        with pytest.raises(cs.CallbackStoreError.ValidationError):
            org.watch(cursor)
    with pytest.raises(cs.CallbackStoreError.ValidationError):
        store.changes(org.changes("start").next_cursor)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": -1}, "limit"),
        ({"limit": 1.5}, "limit"),
        ({"limit": "10"}, "limit"),
        ({"wait": 61}, "wait"),
        ({"wait": datetime.timedelta(minutes=2)}, "wait"),
        ({"wait": -1}, "wait"),
        ({"wait": float("nan")}, "wait"),
        ({"wait": "1s"}, "wait"),
    ],
)
def test_limits_and_waits_out_of_range_are_validation_errors_naming_the_field(
    org: cs.Organization, kwargs: Dict[str, object], field: str
) -> None:
    for call in (lambda: org.changes("start", **kwargs), lambda: org.watch("start", **kwargs)):
        with pytest.raises(cs.CallbackStoreError.ValidationError) as raised:
            call()
        assert raised.value.code == "VALIDATION_ERROR"
        assert str(raised.value).startswith(f"{field}:"), str(raised.value)


def test_the_limits_themselves_are_accepted(org: cs.Organization) -> None:
    ids = create_and_cancel(org, 2)
    assert cs.max_changes() == 1000 and cs.max_wait() == datetime.timedelta(seconds=60)
    assert inspect.signature(cs.Organization.changes).parameters["limit"].default == cs.default_changes() == 100
    assert len(org.changes("start", cs.max_changes()).changes) == 4
    assert [c.event.callback_id for c in org.changes(cs.Since.START(), 1).changes] == ids[:1]
    assert org.changes("now", 1, cs.max_wait() * 0).changes == []
    for bad in (42, None, cs.Status.SCHEDULED):
        with pytest.raises(cs.CallbackStoreError.ValidationError, match="^since:"):
            org.changes(bad)  # type: ignore[arg-type]


def test_a_long_poll_returns_as_soon_as_a_change_commits(org: cs.Organization) -> None:
    writer = threading.Timer(0.3, lambda: org.create(new()))
    started = time.monotonic()
    writer.start()
    page = org.changes("now", 10, wait=20)
    took = time.monotonic() - started
    writer.join()
    assert [c.event.action for c in page.changes] == [cs.EventAction.CREATE]
    assert 0.2 < took < 10, took


def test_a_long_poll_that_finds_nothing_answers_empty_after_its_wait(org: cs.Organization) -> None:
    started = time.monotonic()
    page = org.changes("now", 10, wait=datetime.timedelta(milliseconds=400))
    assert page.changes == [] and page.next_cursor
    assert time.monotonic() - started >= 0.4


def test_the_iterator_ends_when_stop_is_set_or_after_timeout_without_change(org: cs.Organization) -> None:
    started = time.monotonic()
    assert list(org.watch(timeout=0.5, wait=0.1)) == []
    assert 0.5 <= time.monotonic() - started < 5
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    started = time.monotonic()
    assert list(org.watch(stop=stop, wait=0.1)) == []
    assert 0.3 <= time.monotonic() - started < 5


def test_the_store_wide_feed_sees_every_organization(store: cs.Store) -> None:
    a, b = store.organization("org_a"), store.organization("org_b")
    a.create(new())
    b.create(new())
    changes = read_all(store)
    assert [c.organization_id for c in changes] == ["org_a", "org_b"]
    assert [c.organization_id for c in read_all(b)] == ["org_b"]


class Collector(cs.ChangeObserver):
    """A ChangeObserver that keeps what it gets, from the watch's thread."""

    def __init__(self, raise_after: int = 0) -> None:
        self.changes: List[cs.Change] = []
        self.calls = 0
        self.errors: List[Exception] = []
        self.threads = set()
        self.raise_after = raise_after
        self.lock = threading.Lock()

    def on_changes(self, changes: List[cs.Change]) -> None:
        with self.lock:
            self.calls += 1
            self.changes += changes
            self.threads.add(threading.get_ident())
        if self.raise_after and self.calls >= self.raise_after:
            raise RuntimeError("enough")

    def on_error(self, error: Exception) -> None:
        self.errors.append(error)

    def wait_for(self, n: int, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while len(self.changes) < n and time.monotonic() < deadline:
            time.sleep(0.01)


def test_a_watch_observer_gets_every_change_once_in_order_until_cancelled(org: cs.Organization) -> None:
    collector = Collector()
    watch = org.watch("now", collector)
    assert isinstance(watch, cs.Watch) and watch.is_running()
    ids = create_and_cancel(org, 10)
    collector.wait_for(20)
    assert collector.changes == read_all(org)
    assert threading.get_ident() not in collector.threads  # the watch's own thread
    started = time.monotonic()
    watch.cancel()
    assert time.monotonic() - started < 2  # the long poll inside is bounded
    assert not watch.is_running()
    create_and_cancel(org, 2)
    time.sleep(0.5)
    assert len(collector.changes) == 20 and collector.errors == []
    assert [c.event.callback_id for c in collector.changes[::2]] == ids
    watch.cancel()  # again: nothing happens


def test_an_observer_that_raises_stops_its_watch_and_gets_no_error(org: cs.Organization) -> None:
    collector = Collector(raise_after=1)
    watch = org.watch("now", collector)
    org.create(new())
    collector.wait_for(1)
    deadline = time.monotonic() + 10
    while watch.is_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not watch.is_running()
    org.create(new())
    time.sleep(0.5)
    assert collector.calls == 1 and collector.errors == []


def test_a_watch_that_is_released_stops_calling_its_observer(org: cs.Organization) -> None:
    collector = Collector()
    watch = org.watch("now", collector)
    org.create(new())
    collector.wait_for(1)
    del watch  # released: cancelled without waiting for its thread
    time.sleep(0.6)  # past the watch's longest poll
    org.create(new())
    time.sleep(0.6)
    assert len(collector.changes) == 1


def test_an_observer_that_is_not_a_change_observer_is_a_validation_error(org: cs.Organization) -> None:
    with pytest.raises(cs.CallbackStoreError.ValidationError, match="^observer:"):
        org.watch("now", print)  # type: ignore[call-overload]
