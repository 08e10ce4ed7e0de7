"""One claim placed at the same moment from 8 Python threads and from 2
processes: exactly one dial, every round, on the run's backend (a file, or a
PostgreSQL schema: conftest.py). The Dispatcher is Python; the store's calls
release the GIL, so the spends really overlap in the database."""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Counter, List

import pytest
from conftest import T0, CountingDialer, new

import callback_store as cs

ROUNDS = 200
THREADS = 8
WORKER = Path(__file__).with_name("claim_worker.py")
OPTIONS = cs.StoreOptions(durability=cs.Durability.NORMAL)  # fsync is not what is tested


def spends(org: cs.Organization, id: str) -> int:
    return [e.action for e in org.history(id)].count(cs.EventAction.PLACE_CALL)


@pytest.mark.parametrize("stores", ["one_shared_store", "a_store_per_thread"])
def test_one_claim_placed_from_8_threads_dials_once(db_location: str, stores: str) -> None:
    path = db_location
    main = cs.Store.open(path, OPTIONS)
    org = main.organization("org_a")
    shared = stores == "one_shared_store"
    per_thread = [main if shared else cs.Store.open(path, OPTIONS) for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS, timeout=20)
    winners: Counter[int] = collections.Counter()

    with ThreadPoolExecutor(THREADS) as pool:
        for _ in range(ROUNDS):
            cb = org.create(new(0))
            claim = org.dispatch(cb.id)
            dialer = CountingDialer()

            def place(i: int) -> str:
                # With a store of its own, a thread takes the claim as another
                # worker would: by id and token. All do so before any places.
                mine = claim if shared else per_thread[i].claim_by_token(cb.id, claim.token())
                barrier.wait()
                try:
                    per_thread[i].place_call(dialer, mine)
                    return "placed"
                except cs.CallbackStoreError as e:
                    return e.code

            outcomes = list(pool.map(place, range(THREADS)))
            assert sorted(outcomes) == ["INVALID_TRANSITION"] * (THREADS - 1) + ["placed"], outcomes
            assert dialer.calls == [cb.id]
            assert spends(org, cb.id) == 1
            assert org.get(cb.id).status is cs.Status.DISPATCHED
            winners[outcomes.index("placed")] += 1
    print(f"{stores}: winning thread over {ROUNDS} rounds: {dict(sorted(winners.items()))}")
    # Not always the same thread: the threads really raced.
    assert len(winners) > 1, winners


def test_one_claim_placed_from_2_processes_dials_once(db_location: str) -> None:
    path = db_location
    store = cs.Store.open(path, OPTIONS)
    org = store.organization("org_a")
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), path],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    assert worker.stdin is not None and worker.stdout is not None
    wins: Counter[str] = collections.Counter()

    def ask(line: str) -> List[str]:
        assert worker.stdin is not None and worker.stdout is not None
        worker.stdin.write(line + "\n")
        worker.stdin.flush()
        answer = worker.stdout.readline().split()
        assert answer, f"the worker died (exit {worker.poll()})"
        return answer

    try:
        for _ in range(ROUNDS):
            cb = org.create(new(0))
            [claim] = store.claim_due(T0, 1)
            assert claim.id() == cb.id
            assert ask(f"claim {cb.id} {claim.token()}") == ["ready"]
            # Both processes wait for the same instant of the system-wide
            # monotonic clock, then place: their spends meet in the database.
            deadline = time.monotonic() + 0.003
            assert worker.stdin is not None
            worker.stdin.write(f"go {deadline!r}\n")
            worker.stdin.flush()
            while time.monotonic() < deadline:
                pass
            dialer = CountingDialer()
            try:
                store.place_call(dialer, claim)
                mine = "placed"
            except cs.CallbackStoreError as e:
                mine = e.code
            theirs, their_dials = worker.stdout.readline().split()
            assert sorted([mine, theirs]) == ["INVALID_TRANSITION", "placed"], (mine, theirs)
            assert len(dialer.calls) + int(their_dials) == 1
            assert spends(org, cb.id) == 1
            wins["this process" if mine == "placed" else "the worker"] += 1
    finally:
        worker.stdin.close()
        assert worker.wait(timeout=30) == 0
    print(f"2 processes: wins over {ROUNDS} rounds: {dict(wins)}")
    # Each process won some rounds: the two really raced.
    assert len(wins) == 2, wins
