"""Several Python threads on one store (on the run's backend: conftest.py);
no leak over 100k calls."""

from __future__ import annotations

import datetime
import gc
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import List

from conftest import T0, new

import callback_store as cs


def test_threads_share_one_store_and_dispatch_each_callback_once(db_location: str) -> None:
    store = cs.Store.open(db_location, cs.StoreOptions(durability=cs.Durability.NORMAL))
    threads, per_thread = 8, 60

    def writer(n: int) -> List[str]:
        org = store.organization(f"org_{n % 2}")
        ids = []
        for i in range(per_thread):
            cb = org.create(new(0, source_session_id=f"sess_{n}", metadata={"i": i}))
            assert org.get(cb.id).metadata == {"i": i}
            ids.append(cb.id)
            if i % 10 == 0:
                org.list(cs.ListQuery(source_session_id=f"sess_{n}", limit=5))
        return ids

    with ThreadPoolExecutor(threads) as pool:
        created = [i for ids in pool.map(writer, range(threads)) for i in ids]
    assert len(set(created)) == threads * per_thread

    placed: List[str] = []
    lock = threading.Lock()

    class Dialer(cs.Dispatcher):
        def place_call(self, callback: cs.Callback) -> str:
            with lock:
                placed.append(callback.id)
            return f"sess_call_{callback.id}"

    def worker(_: int) -> int:
        done = 0
        while True:
            report = store.dispatch_due(Dialer(), T0, 7)
            if not report.dispatched and not report.failed:
                return done
            done += len(report.dispatched)

    with ThreadPoolExecutor(4) as pool:
        total = sum(pool.map(worker, range(4)))
    assert total == len(placed) == len(set(placed)) == threads * per_thread
    for org_id in ("org_0", "org_1"):
        counts = {c.status: c.count for c in store.organization(org_id).count_by_status()}
        assert counts.get(cs.Status.DISPATCHED) == threads * per_thread // 2


def rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def test_100k_calls_do_not_leak(clock: cs.ManualClock) -> None:
    # The binding's memory (handles, buffers, errors, a foreign Dispatcher),
    # on SQLite in memory whatever the run's backend: 100k round trips to
    # PostgreSQL took 6 minutes on the 2-core test machine.
    store = cs.Store.open_in_memory(cs.StoreOptions(clock=clock))
    org = store.organization("org_acme")
    ids = [org.create(new(h, metadata={"h": h}, reason="r" * 200)).id for h in range(20)]
    query = cs.ListQuery(limit=5)

    class Dialer(cs.Dispatcher):
        def place_call(self, callback: cs.Callback) -> str:
            raise RuntimeError("no line")

    def batch(n: int) -> None:
        # 10 FFI calls per round: reads, errors, clock, records and a
        # foreign Dispatcher (handle map) that raises.
        for i in range(n):
            org.get(ids[i % 20])
            try:
                org.get("cb_missing")
            except cs.CallbackStoreError.NotFound:
                pass
            try:
                org.create(new(0, metadata=[i]))  # type: ignore[arg-type]
            except cs.CallbackStoreError.ValidationError:
                pass
            org.list(query)
            clock.set(T0 + datetime.timedelta(seconds=i))
            clock.now()
            store.now()
            org.history(ids[i % 20])
            store.claim_due(T0 - datetime.timedelta(days=1), 1)
            store.dispatch_due(Dialer(), T0 - datetime.timedelta(days=1), 1)

    batch(2_000)  # warm up caches and allocator pools
    gc.collect()
    before = rss_kib()
    batch(10_000)  # 100k calls
    gc.collect()
    grown = rss_kib() - before
    print(f"RSS {before} KiB -> {before + grown} KiB over 100k calls")
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB over 100k calls"
