"""Replays the conformance vectors (tests/vectors/*.json, format in
tests/vectors/README.md) through the installed Python package, each case on
a fresh store of the run's backend (conftest.py: in memory, or a new
PostgreSQL schema)."""

from __future__ import annotations

import datetime
import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest
from conftest import fresh_store

import callback_store as cs

VECTORS = Path(
    os.environ.get(
        "CALLBACK_STORE_VECTORS",
        Path(__file__).resolve().parents[3] / "tests" / "vectors",
    )
)
MIN_CASES = 45


def load_cases() -> List[Dict[str, Any]]:
    cases = []
    for path in sorted(VECTORS.glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            case["_file"] = path.name
            cases.append(case)
    return cases


CASES = load_cases()


class CaseFailure(AssertionError):
    pass


def ts(text: str) -> datetime.datetime:
    """RFC 3339 (always `Z` in vectors) as an aware datetime, no range check."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def expand(value: Any, saved: Dict[str, str]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$repeat", "times"}:
            return value["$repeat"] * value["times"]
        if set(value) == {"$concat"}:
            parts = [expand(p, saved) for p in value["$concat"]]
            if not all(isinstance(p, str) for p in parts):
                raise CaseFailure(f"$concat of non-strings: {parts!r}")
            return "".join(parts)
        return {k: expand(v, saved) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, saved) for v in value]
    if isinstance(value, str) and value.startswith("$") and value != "$any":
        name = value[1:]
        if name not in saved:
            raise CaseFailure(f"broken vector: {value} was never saved")
        return saved[name]
    return value


def matches(expected: Any, actual: Any) -> bool:
    if expected == "$any":
        return actual is not None
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    if isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        return expected == actual
    if isinstance(expected, dict):
        return (
            isinstance(actual, dict)
            and set(expected) == set(actual)
            and all(matches(expected[k], actual[k]) for k in expected)
        )
    if isinstance(expected, list):
        return (
            isinstance(actual, list)
            and len(expected) == len(actual)
            and all(matches(e, a) for e, a in zip(expected, actual))
        )
    return type(expected) is type(actual) and expected == actual


def at_path(result: Any, path: str) -> Any:
    value = result
    for segment in path.split(".") if path else []:
        if segment.isdigit():
            if not isinstance(value, list) or int(segment) >= len(value):
                raise CaseFailure(f"save path {path!r}: no item {segment}")
            value = value[int(segment)]
        else:
            if not isinstance(value, dict) or segment not in value:
                raise CaseFailure(f"save path {path!r}: no key {segment!r}")
            value = value[segment]
    return value


def new_callback(obj: Dict[str, Any]) -> cs.NewCallback:
    kwargs = dict(obj)
    kwargs["scheduled_at"] = ts(kwargs["scheduled_at"])
    if "expires_at" in kwargs:
        kwargs["expires_at"] = ts(kwargs["expires_at"])
    return cs.NewCallback(**kwargs)


def calling_policy(obj: Dict[str, Any]) -> cs.CallingPolicy:
    """A policy's JSON; absent keys are the default policy's."""
    policy = cs.default_calling_policy()
    for key, value in obj.items():
        if key == "windows":
            value = [
                cs.CallingWindow(
                    days=[cs.Weekday[d.upper()] for d in w["days"]], start=w["start"], end=w["end"]
                )
                for w in value
            ]
        elif key == "retry_on":
            value = [cs.CallOutcome[o.upper()] for o in value]
        elif key not in ("timezone", "max_attempts", "retry_intervals"):
            raise CaseFailure(f"broken vector: unknown policy key {key!r}")
        setattr(policy, key, value)
    return policy


def list_query(obj: Dict[str, Any]) -> cs.ListQuery:
    kwargs = dict(obj)
    for key in ("scheduled_after", "scheduled_before"):
        if key in kwargs:
            kwargs[key] = ts(kwargs[key])
    if "status" in kwargs:
        kwargs["status"] = cs.Status[kwargs["status"].upper()]
    if "order" in kwargs:
        kwargs["order"] = cs.Order[kwargs["order"].upper()]
    return cs.ListQuery(**kwargs)


class Dialer(cs.Dispatcher):
    """What a `place_call` step's `dialer` says: `{"session": S}` answers S,
    `{"error": M}` raises DispatchError.Failed(M). Every call counts in the
    case's `dials`, whatever it answered."""

    def __init__(self, spec: Any, case: "Case") -> None:
        if not isinstance(spec, dict) or len(spec) != 1 or not set(spec) <= {"session", "error"}:
            raise CaseFailure(f"broken vector: dialer {spec!r}")
        self.spec, self.case = spec, case

    def place_call(self, callback: cs.Callback) -> str:
        self.case.dials += 1
        if "error" in self.spec:
            raise cs.DispatchError.Failed(self.spec["error"])
        return self.spec["session"]  # type: ignore[no-any-return]


class Case:
    """One case's store, clock, saved values, and every claim object it was
    handed, by token: a vector names a claim by its token, since only the
    store can make one."""

    def __init__(self, clock: str) -> None:
        self.clock = cs.ManualClock(ts(clock))
        self.store = fresh_store(cs.StoreOptions(clock=self.clock))
        self.saved: Dict[str, str] = {}
        self.claims: Dict[str, cs.Claim] = {}
        self.dials = 0

    def keep_claims(self, result: Any) -> None:
        for item in result if isinstance(result, list) else [result]:
            if isinstance(item, cs.Claim):
                self.claims[item.token()] = item

    def claim(self, token: str) -> cs.Claim:
        if token not in self.claims:
            raise CaseFailure(f"broken vector: no step of the case handed out the claim {token!r}")
        return self.claims[token]

    def place_call(self, a: Dict[str, Any]) -> cs.Callback:
        dialer = Dialer(a["dialer"], self)  # a broken dialer fails before the call
        return self.store.place_call(dialer, self.claim(a["token"]))


OrgOp = Callable[[cs.Organization, Dict[str, Any]], Any]
StoreOp = Callable[[Case, Dict[str, Any]], Any]

ORG_OPS: Dict[str, OrgOp] = {
    "create": lambda o, a: o.create(new_callback(a["callback"])),
    "create_many": lambda o, a: o.create_many([new_callback(c) for c in a["callbacks"]]),
    "get": lambda o, a: o.get(a["id"]),
    "list": lambda o, a: o.list(list_query(a.get("query", {}))),
    "cancel": lambda o, a: o.cancel(a["id"], a.get("reason")),
    "dispatch": lambda o, a: o.dispatch(a["id"]),
    "complete_dispatch": lambda o, a: o.complete_dispatch(
        a["id"], a["created_session_id"], a.get("claim_token")
    ),
    "fail_dispatch": lambda o, a: o.fail_dispatch(a["id"], a["failure_cause"], a.get("claim_token")),
    "reschedule": lambda o, a: o.reschedule(a["id"], ts(a["scheduled_at"])),
    "history": lambda o, a: o.history(a["id"]),
    "calling_policy": lambda o, a: o.calling_policy(),
    "set_calling_policy": lambda o, a: o.set_calling_policy(calling_policy(a["policy"])),
    "agent_calling_policy": lambda o, a: o.agent_calling_policy(a["agent_id"]),
    "set_agent_calling_policy": lambda o, a: o.set_agent_calling_policy(
        a["agent_id"], calling_policy(a["policy"])
    ),
    "clear_agent_calling_policy": lambda o, a: o.clear_agent_calling_policy(a["agent_id"]),
    "retry": lambda o, a: o.retry(a["id"], cs.CallOutcome[a["outcome"].upper()]),
}

STORE_OPS: Dict[str, StoreOp] = {
    "claim_due": lambda c, a: c.store.claim_due(ts(a["now"]), a["limit"]),
    "claim_by_token": lambda c, a: c.store.claim_by_token(a["id"], a["token"]),
    "place_call": lambda c, a: c.place_call(a),
    "dials": lambda c, a: c.dials,
    "recover_stale": lambda c, a: c.store.recover_stale(
        ts(a["now"]), datetime.timedelta(seconds=a["older_than_seconds"])
    ),
    "prune": lambda c, a: c.store.prune(ts(a["before"])),
    "expire_overdue": lambda c, a: c.store.expire_overdue(ts(a["now"]), a["limit"]),
    "create_api_key": lambda c, a: c.store.create_api_key(a["organization_id"], a["label"]),
    "revoke_api_key": lambda c, a: c.store.revoke_api_key(a["key_id"]),
    "authenticate": lambda c, a: {"organization_id": c.store.authenticate(a["authorization"]).id()},
}


def error_expectation(expect: Any) -> Optional[Tuple[str, Optional[str]]]:
    """`{"error": CODE}` or `{"error": CODE, "field": FIELD}`: the code and
    the field the message must name first."""
    if not isinstance(expect, dict) or "error" not in expect or not set(expect) <= {"error", "field"}:
        return None
    return expect["error"], expect.get("field")


def run_case(case: Dict[str, Any]) -> None:
    run = Case(case["clock"])
    saved = run.saved
    for index, step in enumerate(case["steps"]):
        op = step["op"]
        where = f"case {case['name']} ({case['_file']}), step {index} ({op})"
        args = expand(step.get("args", {}), saved)
        if op == "set_clock":
            run.clock.set(ts(args["now"]))
            continue
        if op == "advance_clock":
            run.clock.advance(datetime.timedelta(seconds=args["seconds"]))
            continue
        # `"expect": null` is compared like any other value; only an absent
        # expect leaves the result uncompared.
        has_expect = "expect" in step
        expect = expand(step["expect"], saved) if has_expect else None
        expected_error = error_expectation(expect)
        try:
            if op in ORG_OPS:
                org = expand(step["org"], saved)  # `org` may use $repeat too
                result = ORG_OPS[op](run.store.organization(org), args)
            elif op in STORE_OPS:
                result = STORE_OPS[op](run, args)
            else:
                raise CaseFailure(f"{where}: unknown op")
        except cs.CallbackStoreError as e:
            if expected_error is not None:
                code, field = expected_error
                if e.code != code:
                    raise CaseFailure(f"{where}: expected error {code}, got {e.code}: {e}") from None
                if field is not None and not str(e).startswith(f"{field}: "):
                    raise CaseFailure(f"{where}: expected {code} naming {field}, got: {e}") from None
                continue
            raise CaseFailure(f"{where}: expected success, got {e.code}: {e}") from None
        run.keep_claims(result)
        actual = cs.to_api_dict(result)
        if expected_error is not None:
            raise CaseFailure(
                f"{where}: expected error {expected_error[0]}, got success:\n"
                + json.dumps(actual, indent=1)
            )
        if has_expect and not matches(expect, actual):
            raise CaseFailure(
                f"{where}: result differs\nexpected: {json.dumps(expect, indent=1)}"
                f"\nactual:   {json.dumps(actual, indent=1)}"
            )
        for name, path in step.get("save", {}).items():
            value = at_path(actual, path)
            if not isinstance(value, str):
                raise CaseFailure(f"{where}: saved {name} at {path!r} is not a string: {value!r}")
            saved[name] = value


def test_there_are_enough_vectors() -> None:
    assert len(CASES) >= MIN_CASES, f"only {len(CASES)} cases in {VECTORS}"
    names = [c["name"] for c in CASES]
    assert len(names) == len(set(names)), "case names must be unique"


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_vector(case: Dict[str, Any]) -> None:
    run_case(case)
