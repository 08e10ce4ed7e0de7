"""Every error code as its own exception class with `.code`; bad values of
the custom types are VALIDATION_ERROR, never an internal error or a crash."""

from __future__ import annotations

import datetime
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import T0, new

import callback_store as cs

E = cs.CallbackStoreError
CODES = {
    E.Unauthorized: "UNAUTHORIZED",
    E.NotFound: "NOT_FOUND",
    E.InvalidTransition: "INVALID_TRANSITION",
    E.Conflict: "CONFLICT",
    E.ValidationError: "VALIDATION_ERROR",
    E.StorageError: "STORAGE_ERROR",
    E.SchemaError: "SCHEMA_ERROR",
}


def raised(fn, cls):
    with pytest.raises(cls) as info:
        fn()
    err = info.value
    assert isinstance(err, cs.CallbackStoreError)
    assert err.code == CODES[cls]
    assert str(err) == err.reason == err.message and err.reason
    return err


def test_unauthorized(store: cs.Store) -> None:
    for token in ["", "Bearer ", "Bearer nope", "cbk_unknown"]:
        err = raised(lambda: store.authenticate(token), E.Unauthorized)
        assert str(err) == "Unauthorized"


def test_not_found_also_for_other_organizations(store: cs.Store, org: cs.Organization) -> None:
    raised(lambda: org.get("cb_missing"), E.NotFound)
    cb = org.create(new())
    other = store.organization("org_other")
    for op in (other.get, other.dispatch, other.cancel, other.history):
        raised(lambda: op(cb.id), E.NotFound)


def test_invalid_transition_names_both(org: cs.Organization) -> None:
    cb = org.create(new())
    org.dispatch(cb.id)
    err = raised(lambda: org.cancel(cb.id), E.InvalidTransition)
    assert "cancel" in str(err) and "dispatching" in str(err)
    raised(lambda: org.reschedule(cb.id, T0), E.InvalidTransition)


def test_conflict_on_reused_idempotency_key(org: cs.Organization) -> None:
    org.create(new(idempotency_key="k1"))
    raised(lambda: org.create(new(2, idempotency_key="k1")), E.Conflict)


@pytest.mark.parametrize(
    "bad, field",
    [
        (dict(to_number="12015551234"), "to_number"),
        (dict(scheduled_at=datetime.datetime(2030, 1, 1)), "scheduled_at"),  # naive
        (dict(scheduled_at="2030-01-01T00:00:00Z"), "scheduled_at"),  # not a datetime
        (dict(scheduled_at=datetime.datetime(1969, 12, 31, tzinfo=datetime.timezone.utc)), "scheduled_at"),
        (dict(metadata=[1, 2]), "metadata"),
        (dict(metadata="{}"), "metadata"),
        (dict(metadata={"s": {1, 2}}), "metadata"),
        (dict(metadata={"x": float("inf")}), "metadata"),
        (dict(pipeline_config={"deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}), "pipeline_config"),
        (dict(reason="x" * 65537), "reason"),
        (dict(source_session_id=""), "source_session_id"),
    ],
)
def test_validation_names_the_field(org: cs.Organization, bad, field) -> None:
    kwargs = dict(to_number="+12015551234", scheduled_at=T0)
    kwargs.update(bad)
    err = raised(lambda: org.create(cs.NewCallback(**kwargs)), E.ValidationError)
    assert str(err).startswith(f"{field}:"), str(err)
    err = raised(lambda: org.create_many([new(), cs.NewCallback(**kwargs)]), E.ValidationError)
    assert str(err).startswith(f"callbacks[1].{field}:"), str(err)
    assert org.list().callbacks == []  # all or nothing


def test_validation_of_every_other_custom_value(store: cs.Store, org: cs.Organization, clock) -> None:
    naive = datetime.datetime(2030, 1, 1)
    cb = org.create(new())
    raised(lambda: org.reschedule(cb.id, naive), E.ValidationError)
    raised(lambda: org.list(cs.ListQuery(scheduled_after=naive)), E.ValidationError)
    raised(lambda: org.list(cs.ListQuery(limit=0)), E.ValidationError)
    raised(lambda: org.list(cs.ListQuery(limit=101)), E.ValidationError)
    raised(lambda: org.list(cs.ListQuery(cursor="tampered")), E.ValidationError)
    raised(lambda: store.claim_due(naive, 1), E.ValidationError)
    raised(lambda: store.prune(naive), E.ValidationError)
    raised(lambda: cs.ManualClock(naive), E.ValidationError)
    raised(lambda: clock.set(naive), E.ValidationError)
    raised(lambda: clock.advance(datetime.timedelta(days=3_000_000)), E.ValidationError)
    raised(lambda: store.organization(""), E.ValidationError)
    raised(
        lambda: cs.Store.open_in_memory(cs.StoreOptions(busy_timeout=datetime.timedelta(days=30))),
        E.ValidationError,
    )
    assert clock.now() == T0  # unchanged by the refused calls


def test_storage_error_when_busy_and_when_unopenable(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    store = cs.Store.open(str(path), cs.StoreOptions(busy_timeout=datetime.timedelta(milliseconds=50)))
    org = store.organization("org_a")
    # Another process holds the write lock (POSIX locks do not conflict
    # within one process, so it must be another one).
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('BEGIN IMMEDIATE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.readline()\n",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        err = raised(lambda: org.create(new()), E.StorageError)
        assert err.busy is True
    finally:
        holder.communicate("done\n", timeout=10)
    org.create(new())  # free again
    err = raised(lambda: cs.Store.open(str(tmp_path / "no" / "such" / "dir.db")), E.StorageError)
    assert err.busy is False


def test_schema_error_for_foreign_and_newer_files(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    raised(lambda: cs.Store.open(str(foreign)), E.SchemaError)
    text = tmp_path / "notes.db"
    text.write_bytes(b"this is not a database at all, just text" * 100)
    raised(lambda: cs.Store.open(str(text)), E.SchemaError)


def test_every_variant_is_a_subclass_with_its_code() -> None:
    assert len(CODES) == 7
    for cls in CODES:
        assert issubclass(cls, cs.CallbackStoreError)


class Weird(cs.Dispatcher):
    def __init__(self, outcome):
        self.outcome = outcome

    def place_call(self, callback):
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome


@pytest.mark.parametrize(
    "outcome, cause",
    [
        (RuntimeError("line busy"), "line busy"),
        (ValueError(), "ValueError"),
        (cs.DispatchError.Failed("no answer"), "no answer"),
        ("", "the dispatcher returned an unusable session id"),
        (42, "int"),  # not a str: fails, never crashes
    ],
)
def test_a_dispatcher_that_fails_ends_failed_never_dispatching(store, org, outcome, cause) -> None:
    cb = org.create(new(0))
    report = store.dispatch_due(Weird(outcome), T0, 10)
    assert [c.id for c in report.failed] == [cb.id]
    failed = org.get(cb.id)
    assert failed.status is cs.Status.FAILED
    assert cause in failed.failure_cause, failed.failure_cause
