"""The second process of test_claims_concurrency.py (not a test module).

    python claim_worker.py PATH

Opens the store at PATH and serves rounds over stdin/stdout, one line each:
  <- "claim ID TOKEN"    takes the claim with Store.claim_by_token(ID, TOKEN)
  -> "ready"             (or "refused CODE" when there was no live claim)
  <- "go DEADLINE"       spins until time.monotonic() >= DEADLINE (the same
                         clock in every process), then places the claim
  -> "OUTCOME DIALS"     OUTCOME is "placed" or the error code; DIALS is how
                         many times this process's dialer was called
"""

from __future__ import annotations

import sys
import time

import callback_store as cs


class Dialer(cs.Dispatcher):
    def __init__(self) -> None:
        self.calls = 0

    def place_call(self, callback: cs.Callback) -> str:
        self.calls += 1
        return "sess_from_worker"


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
            deadline = float(words[1])
            while time.monotonic() < deadline:
                pass  # both processes leave this loop within microseconds
            dialer = Dialer()
            try:
                assert claim is not None, "go before a claim"
                store.place_call(dialer, claim)
                outcome = "placed"
            except cs.CallbackStoreError as e:
                outcome = e.code
            reply(f"{outcome} {dialer.calls}")
        else:
            raise SystemExit(f"claim_worker: unknown command {line!r}")


if __name__ == "__main__":
    main(sys.argv[1])
