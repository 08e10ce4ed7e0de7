"""The other processes of test_claims_concurrency.py and test_postgres.py
(not a test module).

    python claim_worker.py LOCATION

Opens the store at LOCATION (a file, or a PostgreSQL URL) and serves rounds
over stdin/stdout, one line each:
  <- "claim ID TOKEN"    takes the claim with Store.claim_by_token(ID, TOKEN)
  -> "ready"             (or "refused CODE" when there was no live claim)
  <- "go DEADLINE"       spins until time.monotonic() >= DEADLINE (the same
                         clock in every process), then places the claim
  -> "OUTCOME DIALS"     OUTCOME is "placed" or the error code; DIALS is how
                         many times this process's dialer was called
  <- "drain DEADLINE NOW LIMIT"
                         spins until DEADLINE, then claims what is due at NOW
                         (ISO 8601), LIMIT at a time, and places every claim,
                         until claim_due finds nothing
  -> "drained ID ..."    the callbacks this process's dialer called, in order
"""

from __future__ import annotations

import datetime
import sys
import time
from typing import List

import callback_store as cs


class Dialer(cs.Dispatcher):
    def __init__(self) -> None:
        self.calls: List[str] = []

    def place_call(self, callback: cs.Callback) -> str:
        self.calls.append(callback.id)
        return "sess_from_worker"


def spin_until(deadline: float) -> None:
    while time.monotonic() < deadline:
        pass  # every process leaves this loop within microseconds


def reply(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def main(path: str) -> None:
    store = cs.Store.open(path, cs.StoreOptions(durability=cs.Durability.NORMAL))
    claim = None
    for line in sys.stdin:
        words = line.split()
        if words[0] == "claim":
            try:
                claim = store.claim_by_token(words[1], words[2])
                reply("ready")
            except cs.CallbackStoreError as e:
                claim = None
                reply(f"refused {e.code}")
        elif words[0] == "go":
            spin_until(float(words[1]))
            dialer = Dialer()
            try:
                assert claim is not None, "go before a claim"
                store.place_call(dialer, claim)
                outcome = "placed"
            except cs.CallbackStoreError as e:
                outcome = e.code
            reply(f"{outcome} {len(dialer.calls)}")
        elif words[0] == "drain":
            spin_until(float(words[1]))
            now, limit = datetime.datetime.fromisoformat(words[2]), int(words[3])
            dialer = Dialer()
            while True:
                claims = store.claim_due(now, limit)
                if not claims:
                    break
                for due in claims:
                    store.place_call(dialer, due)
            reply(" ".join(["drained", *dialer.calls]))
        else:
            raise SystemExit(f"claim_worker: unknown command {line!r}")


if __name__ == "__main__":
    main(sys.argv[1])
