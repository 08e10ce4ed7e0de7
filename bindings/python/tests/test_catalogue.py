"""Bad input, the Python part: every case of reliability/catalogue.json whose
layers include "python" is replayed through the installed package, each on a
fresh copy of the fixture store, on the run's backend (conftest.py). A
refused input must raise the CallbackStoreError of its documented code
(`.code`; a VALIDATION_ERROR's message names its field) and change nothing
the binding can see: the callbacks of every organization involved, their
statuses, their histories and the organizations' API keys. An input the
catalogue accepts must succeed.

The counts are read through the binding itself, never with `sqlite3` in
this process: SQLite's POSIX locks do not work between two copies of SQLite
in one process, and closing the `sqlite3` connection would drop the
binding's locks.

How the API's JSON becomes Python arguments: RFC 3339 text with an offset
becomes an aware `datetime` (a date Python cannot hold, like February 30,
stays text); a date-time without offset a naive `datetime`; other text
stays text where a `datetime` belongs. A status or order named as the API
names it becomes the enum member; any other text stays text. Objects become
dicts, other JSON values stay what they are. `older_than_seconds` beyond
what `timedelta` holds becomes `timedelta.max`, the largest a Python caller
can give. Where Python answers otherwise than the library, the case says so
with `python_code` and why in `python_note`.
"""

from __future__ import annotations

import datetime
import gc
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from conftest import fresh_schema, postgres_server, schema_url

import callback_store as cs

CATALOGUE = Path(
    os.environ.get(
        "CALLBACK_STORE_CATALOGUE",
        Path(__file__).resolve().parents[3] / "reliability" / "catalogue.json",
    )
)
DOC = json.loads(CATALOGUE.read_text(encoding="utf-8"))
CASES = [c for c in DOC["cases"] if "python" in c.get("layers", ["rust", "python", "http"])]
MIN_CASES = 100

RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,6})?(Z|([+-])(\d{2}):(\d{2}))$"
)
NAIVE = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2})?$")


def when(text: Any) -> Any:
    """A timestamp argument as a Python caller would give it."""
    if not isinstance(text, str):
        return text
    m = RFC3339.match(text)
    if m:
        if m.group(8) == "Z":
            tz = datetime.timezone.utc
        else:
            sign = -1 if m.group(9) == "-" else 1
            tz = datetime.timezone(
                sign * datetime.timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
            )
        micros = int((m.group(7) or ".0")[1:].ljust(6, "0"))
        try:
            return datetime.datetime(*(int(m.group(i)) for i in range(1, 7)), micros, tzinfo=tz)
        except ValueError:  # February 30: no datetime holds it
            return text
    if NAIVE.match(text):
        return datetime.datetime.fromisoformat(text)
    return text


def enum(kind: Any, text: Any) -> Any:
    """The enum member the API's text names, or the text itself."""
    if isinstance(text, str) and text == text.lower() and text.upper() in kind.__members__:
        return kind[text.upper()]
    return text


def new_callback(body: Dict[str, Any]) -> cs.NewCallback:
    kwargs = dict(body)
    kwargs["scheduled_at"] = when(kwargs.get("scheduled_at"))
    if "expires_at" in kwargs:
        kwargs["expires_at"] = when(kwargs["expires_at"])
    return cs.NewCallback(**kwargs)


def calling_policy(body: Dict[str, Any]) -> cs.CallingPolicy:
    """A policy as a Python caller builds one: the default's fields, each
    one the case gives replaced (days and outcomes as enum members when the
    text names one)."""
    default = cs.default_calling_policy()
    kwargs: Dict[str, Any] = {
        "timezone": default.timezone,
        "windows": default.windows,
        "max_attempts": default.max_attempts,
        "retry_intervals": default.retry_intervals,
        "retry_on": default.retry_on,
    }
    for key, value in body.items():
        if key == "windows":
            value = [
                cs.CallingWindow(days=[enum(cs.Weekday, d) for d in w["days"]], start=w["start"], end=w["end"])
                for w in value
            ]
        elif key == "retry_on":
            value = [enum(cs.CallOutcome, o) for o in value]
        kwargs[key] = value
    return cs.CallingPolicy(**kwargs)


def list_query(q: Dict[str, Any]) -> cs.ListQuery:
    kwargs = {k: v for k, v in q.items() if k != "organization_id"}
    for key in ("scheduled_after", "scheduled_before"):
        if key in kwargs:
            kwargs[key] = when(kwargs[key])
    if "status" in kwargs:
        kwargs["status"] = enum(cs.Status, kwargs["status"])
    if "order" in kwargs:
        kwargs["order"] = enum(cs.Order, kwargs["order"])
    return cs.ListQuery(**kwargs)


# ---------------------------------------------------------------- fixture


class Fixture:
    """The catalogue's fixture store, fresh for each case: on SQLite a copy of
    a template file filled once; on PostgreSQL (conftest.py) a new schema
    filled for each case, whose ids become the fixture's."""

    def __init__(self, folder: Path) -> None:
        self.template = folder / "fixture.db"
        self.organization_id: str = DOC["fixture"]["organization_id"]
        self.other_organization_id: str = DOC["fixture"]["other_organization_id"]
        self.server = postgres_server()
        if self.server is None:
            self.fill(cs.Store.open(str(self.template)))
            gc.collect()  # the last handle closes the store: the file holds all

    def fill(self, store: cs.Store) -> None:
        spec, ids = DOC["fixture"], []
        for org_key, list_key in (("organization_id", "callbacks"), ("other_organization_id", "other_callbacks")):
            created = store.organization(spec[org_key]).create_many([new_callback(c) for c in spec[list_key]])
            ids.append(created[0].id)
        self.callback_id, self.other_callback_id = ids

    def copy(self, folder: Path) -> cs.Store:
        if self.server is not None:
            store = cs.Store.open(schema_url(self.server, fresh_schema(self.server)))
            self.fill(store)
            return store
        path = folder / "case.db"
        shutil.copy(self.template, path)
        wal = Path(f"{self.template}-wal")
        if wal.exists():
            shutil.copy(wal, f"{path}-wal")
        return cs.Store.open(str(path))


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> Fixture:
    return Fixture(tmp_path_factory.mktemp("catalogue"))


def expand(value: Any, fx: Fixture, store: cs.Store) -> Any:
    if value == "$callback_id":
        return fx.callback_id
    if value == "$other_organization_callback_id":
        return fx.other_callback_id
    if isinstance(value, list):
        return [expand(v, fx, store) for v in value]
    if not isinstance(value, dict):
        return value
    if "$repeat" in value:
        return value["$repeat"] * value["times"]
    if "$nest" in value:
        nested: Any = 0
        for _ in range(value["$nest"]):
            nested = [nested]
        return nested
    if "$cursor" in value:
        spec = value["$cursor"]
        org = store.organization(spec.get("organization_id", fx.organization_id))
        query = list_query(dict(spec["query"], limit=1))
        text = org.list(query).next_cursor
        assert text, "the fixture has a second page"
        tamper = spec["tamper"]
        if tamper == "flip":
            mid = len(text) // 2
            text = text[:mid] + ("B" if text[mid] == "A" else "A") + text[mid + 1 :]
        elif tamper == "truncate":
            text = text[:-4]
        elif tamper == "append":
            text += "AA"
        return text
    return {k: expand(v, fx, store) for k, v in value.items()}


# ---------------------------------------------------------------- the runner


def execute(store: cs.Store, fx: Fixture, op: str, a: Dict[str, Any]) -> Any:
    """Runs one operation; what it returned."""
    org = lambda: store.organization(a.get("organization_id", fx.organization_id))  # noqa: E731
    if op == "organization":
        return org()
    if op == "create":
        return org().create(new_callback(a))
    if op == "create_many":
        return org().create_many([new_callback(c) for c in a["callbacks"]])
    if op == "list":
        return org().list(list_query(a))
    if op == "get":
        return org().get(a["id"])
    if op == "history":
        return org().history(a["id"])
    if op == "cancel":
        return org().cancel(a["id"], a.get("reason"))
    if op == "dispatch":
        return org().dispatch(a["id"])
    if op == "complete_dispatch":
        return org().complete_dispatch(a["id"], a["created_session_id"])
    if op == "fail_dispatch":
        return org().fail_dispatch(a["id"], a["failure_cause"])
    if op == "reschedule":
        return org().reschedule(a["id"], when(a["scheduled_at"]))
    if op == "claim_due":
        return store.claim_due(when(a["now"]), a["limit"])
    if op == "recover_stale":
        seconds = a["older_than_seconds"]
        older = datetime.timedelta.max if seconds > datetime.timedelta.max.total_seconds() else datetime.timedelta(seconds=seconds)
        return store.recover_stale(when(a["now"]), older)
    if op == "prune":
        return store.prune(when(a["before"]))
    if op == "set_calling_policy":
        return org().set_calling_policy(calling_policy(a))
    if op == "set_agent_calling_policy":
        return org().set_agent_calling_policy(a["agent_id"], calling_policy(a["policy"]))
    if op == "clear_agent_calling_policy":
        return org().clear_agent_calling_policy(a["agent_id"])
    if op == "retry":
        return org().retry(a["id"], enum(cs.CallOutcome, a["outcome"]))
    if op == "authenticate":
        return store.authenticate(a["authorization"])
    if op == "create_api_key":
        return store.create_api_key(a["organization_id"], a["label"])
    if op == "revoke_api_key":
        return store.revoke_api_key(a["key_id"])
    raise AssertionError(f"unknown op {op}")


def readable(org_id: Any) -> bool:
    """Whether an organization id can be read back (1-255 bytes, no control)."""
    return isinstance(org_id, str) and 0 < len(org_id.encode()) <= 255 and not any(ord(ch) < 32 or ord(ch) == 127 for ch in org_id)


Snapshot = Dict[str, Tuple[List[Tuple[str, int]], Dict[str, int], int, Any]]


def snapshot(store: cs.Store, orgs: List[str]) -> Snapshot:
    """Per organization: its counts by status, the length of each callback's
    history, its API keys (revoked or not), and its calling policies (its
    own and the catalogue's agent's): all through the binding."""
    seen: Snapshot = {}
    for org_id in orgs:
        org = store.organization(org_id)
        counts = sorted((c.status.name, c.count) for c in org.count_by_status())
        histories: Dict[str, int] = {}
        cursor: Optional[str] = None
        while True:
            page = org.list(cs.ListQuery(limit=100, cursor=cursor))
            for cb in page.callbacks:
                histories[cb.id] = len(org.history(cb.id))
            cursor = page.next_cursor
            if cursor is None:
                break
        keys = len(store.list_api_keys(org_id))
        policies = (cs.to_api_dict(org.calling_policy()), org.agent_calling_policy("agent_1"))
        seen[org_id] = (counts, histories, keys, policies)
    return seen


def problem_of(case: Dict[str, Any], fx: Fixture, folder: Path) -> Optional[str]:
    """Runs one case on a fresh copy of the fixture; what went wrong."""
    store = fx.copy(folder)
    a = expand(case["input"], fx, store)
    orgs = [fx.organization_id, fx.other_organization_id]
    if readable(a.get("organization_id")) and a["organization_id"] not in orgs:
        orgs.append(a["organization_id"])
    before = snapshot(store, orgs)
    code, field = case["expected_code"], case.get("field")
    if "python_code" in case:  # Python answers otherwise, for the reason in python_note
        code, field = case["python_code"], None
    try:
        result = execute(store, fx, case["op"], a)
    except cs.CallbackStoreError as e:
        if code is None:
            return f"refused with {e.code} ({e}), expected to succeed"
        if e.code != code:
            return f"got {e.code} ({e}), expected {code}"
        if isinstance(field, str) and not str(e).startswith(f"{field}: "):
            return f"the message {str(e)!r} does not name {field}"
        if snapshot(store, orgs) != before:
            return "refused, but what the binding sees changed"
        return None
    except Exception as e:  # anything without a code is a defect
        return f"raised {type(e).__name__}: {e} (no .code), expected {code}"
    if code is not None:
        return f"accepted, expected {code}"
    after = snapshot(store, orgs)
    if case["op"] == "list":
        if len(result.callbacks) != case["expected_rows"]:
            return f"{len(result.callbacks)} rows, expected {case['expected_rows']}"
        return None if after == before else "a list changed what the binding sees"
    if case["op"] == "create":
        stored = cs.to_api_dict(result)
        for k, v in a.items():
            if k != "idempotency_key" and v is not None and stored[k] != v:
                return f"{k} was not stored as given"
        grown = after[fx.organization_id][0] != before[fx.organization_id][0]
        return None if grown else "created, but no callback was added"
    return None


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_every_bad_input_of_the_catalogue_gets_its_documented_code_and_changes_nothing(
    case: Dict[str, Any], fx: Fixture, tmp_path: Path
) -> None:
    problem = problem_of(case, fx, tmp_path)
    assert problem is None, f"{case['name']}: {problem}"


def test_the_catalogue_gives_python_every_case_it_applies_to() -> None:
    by_code: Dict[str, int] = {}
    for c in CASES:
        key = c.get("python_code", c["expected_code"]) or "accepted"
        by_code[key] = by_code.get(key, 0) + 1
    print(f"python catalogue: {len(CASES)} cases of {len(DOC['cases'])}: {by_code}")
    assert len(CASES) >= MIN_CASES, len(CASES)
    assert all(c["op"] != "http" for c in CASES)


def test_values_uniffi_checks_in_python_are_validation_errors_naming_the_field() -> None:
    store = cs.Store.open_in_memory()
    org = store.organization("org_a")
    now = datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc)
    calls = [
        ("limit", lambda: org.list(cs.ListQuery(limit=2.5))),  # type: ignore[arg-type]
        ("limit", lambda: org.list(query=cs.ListQuery(limit="abc"))),  # type: ignore[arg-type]
        ("limit", lambda: org.list(cs.ListQuery(limit=2**40))),
        ("status", lambda: org.list(cs.ListQuery(status="scheduled"))),  # type: ignore[arg-type]
        ("order", lambda: org.list(cs.ListQuery(order=1))),  # type: ignore[arg-type]
        ("limit", lambda: store.claim_due(now, -1)),
        ("limit", lambda: store.dispatch_due(None, now, limit=-5)),  # type: ignore[arg-type]
        ("max_connections", lambda: cs.Store.open_in_memory(cs.StoreOptions(max_connections=-1))),
        ("max_connections", lambda: cs.Store.open("postgres://nowhere.invalid/db", cs.StoreOptions(max_connections="4"))),  # type: ignore[arg-type]
    ]
    for field, call in calls:
        with pytest.raises(cs.CallbackStoreError.ValidationError) as info:
            call()
        assert info.value.code == "VALIDATION_ERROR"
        assert str(info.value).startswith(f"{field}: "), str(info.value)
    # An argument left out is still Python's own TypeError.
    with pytest.raises(TypeError):
        store.claim_due(now)  # type: ignore[call-arg]
    assert org.list(cs.ListQuery(status=cs.Status.SCHEDULED, limit=1)).callbacks == []
