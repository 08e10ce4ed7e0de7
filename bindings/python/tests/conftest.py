from __future__ import annotations

import datetime
import threading
from typing import List

import pytest

import callback_store as cs

T0 = datetime.datetime(2030, 1, 1, 9, 0, tzinfo=datetime.timezone.utc)


@pytest.fixture
def clock() -> cs.ManualClock:
    return cs.ManualClock(T0)


@pytest.fixture
def store(clock: cs.ManualClock) -> cs.Store:
    return cs.Store.open_in_memory(cs.StoreOptions(clock=clock))


@pytest.fixture
def org(store: cs.Store) -> cs.Organization:
    return store.organization("org_acme")


def new(hours: float = 1, **kwargs) -> cs.NewCallback:
    kwargs.setdefault("to_number", "+12015551234")
    return cs.NewCallback(scheduled_at=T0 + datetime.timedelta(hours=hours), **kwargs)


class CountingDialer(cs.Dispatcher):
    """A Python Dispatcher that records every call it gets (from any thread)."""

    def __init__(self, session: str = "sess_call") -> None:
        self.session = session
        self.calls: List[str] = []
        self.lock = threading.Lock()

    def place_call(self, callback: cs.Callback) -> str:
        with self.lock:
            self.calls.append(callback.id)
        return self.session
