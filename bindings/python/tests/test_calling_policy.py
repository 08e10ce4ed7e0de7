"""The calling policy through the Python package: policies of the
organization and of an agent, a callback's own zone and deadline, windows
refusing "dispatch now", follow-up attempts, the deadline sweep. The rules
themselves are the core's (and the conformance vectors'); these tests prove
that each reaches Python typed, with its errors as exceptions with `.code`.
Runs on both backends (conftest.py)."""

from __future__ import annotations

import dataclasses
import datetime
import re

import pytest
from conftest import T0, new

import callback_store as cs

E = cs.CallbackStoreError
US = datetime.timedelta(microseconds=1)
EVERY_DAY = [cs.Weekday.MON, cs.Weekday.TUE, cs.Weekday.WED, cs.Weekday.THU, cs.Weekday.FRI, cs.Weekday.SAT, cs.Weekday.SUN]


def new_york_8_to_21() -> cs.CallingPolicy:
    return dataclasses.replace(
        cs.default_calling_policy(),
        timezone="America/New_York",
        windows=[cs.CallingWindow(days=EVERY_DAY, start="08:00", end="21:00")],
    )


def retries(max_attempts: int, interval: str, *on: cs.CallOutcome) -> cs.CallingPolicy:
    return dataclasses.replace(
        cs.default_calling_policy(), max_attempts=max_attempts, retry_intervals=[interval], retry_on=list(on)
    )


def test_an_organization_without_a_policy_reads_the_default(org: cs.Organization) -> None:
    policy = org.calling_policy()
    assert policy == cs.default_calling_policy()
    assert policy == cs.CallingPolicy(
        timezone="UTC",
        windows=[],
        max_attempts=1,
        retry_intervals=["1h"],
        retry_on=[cs.CallOutcome.NO_ANSWER, cs.CallOutcome.BUSY, cs.CallOutcome.VOICEMAIL],
    )


def test_a_set_policy_reads_back_typed_and_in_the_api_shape(org: cs.Organization) -> None:
    wanted = new_york_8_to_21()
    assert org.set_calling_policy(wanted) == wanted
    got = org.calling_policy()
    assert got == wanted
    assert isinstance(got.windows[0], cs.CallingWindow) and got.windows[0].days[6] is cs.Weekday.SUN
    assert cs.to_api_dict(got) == {
        "timezone": "America/New_York",
        "windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "start": "08:00", "end": "21:00"}],
        "max_attempts": 1,
        "retry_intervals": ["1h"],
        "retry_on": ["no_answer", "busy", "voicemail"],
    }


def test_an_agents_policy_overrides_the_organizations_until_cleared(org: cs.Organization) -> None:
    org.set_calling_policy(new_york_8_to_21())
    assert org.agent_calling_policy("agent_1") is None
    own = retries(3, "2h", cs.CallOutcome.NO_ANSWER)
    assert org.set_agent_calling_policy("agent_1", own) == own
    assert org.agent_calling_policy("agent_1") == own
    assert org.calling_policy() == new_york_8_to_21()  # the organization's is untouched
    # At 04:00 in New York (T0 = 09:00Z) only agent_1's callbacks may ring.
    mine = org.create(new(hours=0, agent_id="agent_1"))
    theirs = org.create(new(hours=0, agent_id="agent_2"))
    org.dispatch(mine.id)
    with pytest.raises(E.InvalidTransition):
        org.dispatch(theirs.id)
    assert org.clear_agent_calling_policy("agent_1") is None
    assert org.agent_calling_policy("agent_1") is None
    with pytest.raises(E.NotFound) as info:
        org.clear_agent_calling_policy("agent_1")
    assert info.value.code == "NOT_FOUND"


def test_create_keeps_a_zone_and_a_deadline_and_the_api_dict_ends_with_the_extension_keys(
    org: cs.Organization,
) -> None:
    deadline = T0 + datetime.timedelta(days=2)
    cb = org.create(new(timezone="Asia/Kathmandu", expires_at=deadline))
    assert cb.timezone == "Asia/Kathmandu" and cb.expires_at == deadline
    assert cb.expires_at.tzinfo is not None
    assert cb.attempt == 1 and cb.previous_callback_id is None
    api = cs.to_api_dict(cb)
    assert list(api) == list(cs.CALLBACK_KEYS) and len(api) == 25
    assert list(api)[21:] == ["timezone", "expires_at", "attempt", "previous_callback_id"]
    assert api["expires_at"] == "2030-01-03T09:00:00Z" and api["attempt"] == 1
    plain = cs.to_api_dict(org.create(new()))
    assert plain["timezone"] is None and plain["expires_at"] is None and plain["previous_callback_id"] is None


def test_a_deadline_not_after_scheduled_at_and_an_unknown_zone_are_validation_errors(
    org: cs.Organization,
) -> None:
    at = T0 + datetime.timedelta(hours=1)
    for kwargs, field in (
        ({"expires_at": at}, "expires_at"),
        ({"expires_at": at - US}, "expires_at"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ):
        with pytest.raises(E.ValidationError) as info:
            org.create(new(**kwargs))
        assert info.value.code == "VALIDATION_ERROR" and str(info.value).startswith(f"{field}: ")


def test_dispatch_outside_the_window_is_an_invalid_transition_naming_the_next_opening(
    org: cs.Organization, clock: cs.ManualClock
) -> None:
    org.set_calling_policy(new_york_8_to_21())
    cb = org.create(new(hours=0))
    # T0 is 09:00Z, 04:00 in New York (EST): the window opens at 08:00 EST = 13:00Z.
    with pytest.raises(E.InvalidTransition) as info:
        org.dispatch(cb.id)
    assert info.value.code == "INVALID_TRANSITION"
    assert "2030-01-01T13:00:00Z" in str(info.value)
    assert org.get(cb.id).status is cs.Status.SCHEDULED
    clock.set(datetime.datetime(2030, 1, 1, 13, tzinfo=datetime.timezone.utc))
    assert org.dispatch(cb.id).callback().status is cs.Status.DISPATCHING


def test_retry_creates_attempt_2_once_and_refuses_an_outcome_not_listed(org: cs.Organization) -> None:
    org.set_calling_policy(retries(3, "2h", cs.CallOutcome.NO_ANSWER))
    cb = org.create(new(hours=0, reason="call me back"))
    org.dispatch(cb.id)
    org.complete_dispatch(cb.id, "sess_1")
    follow_up = org.retry(cb.id, cs.CallOutcome.NO_ANSWER)
    assert follow_up.attempt == 2 and follow_up.previous_callback_id == cb.id
    assert follow_up.status is cs.Status.SCHEDULED and follow_up.reason == "call me back"
    assert follow_up.scheduled_at == T0 + datetime.timedelta(hours=2)
    # Asked again (a retried webhook, a second worker): the same follow-up.
    assert org.retry(cb.id, cs.CallOutcome.NO_ANSWER) == follow_up
    assert org.get(cb.id).status is cs.Status.DISPATCHED  # the call itself stays as it was
    assert [e.action for e in org.history(cb.id)][-1] is cs.EventAction.RETRY

    other = org.create(new(hours=0))
    org.dispatch(other.id)
    org.complete_dispatch(other.id, "sess_2")
    with pytest.raises(E.InvalidTransition) as info:
        org.retry(other.id, cs.CallOutcome.BUSY)
    assert info.value.code == "INVALID_TRANSITION" and "busy" in str(info.value)


def test_fail_dispatch_creates_the_follow_up_when_the_policy_retries_failed(org: cs.Organization) -> None:
    org.set_calling_policy(retries(2, "30m", cs.CallOutcome.FAILED))
    cb = org.create(new(hours=0))
    org.dispatch(cb.id)
    assert org.fail_dispatch(cb.id, "carrier error").status is cs.Status.FAILED
    [follow_up] = org.list(cs.ListQuery(status=cs.Status.SCHEDULED)).callbacks
    assert follow_up.attempt == 2 and follow_up.previous_callback_id == cb.id
    assert follow_up.scheduled_at == T0 + datetime.timedelta(minutes=30)


def test_expire_overdue_fails_callbacks_still_scheduled_at_their_deadline(
    store: cs.Store, org: cs.Organization
) -> None:
    deadline = T0 + datetime.timedelta(hours=2)
    cb = org.create(new(hours=1, expires_at=deadline))
    assert store.expire_overdue(deadline - US, 10) == []
    [expired] = store.expire_overdue(deadline, 10)
    assert expired.id == cb.id and expired.status is cs.Status.FAILED
    assert expired.failure_cause == cs.expired() == "expired"
    assert [e.action for e in org.history(cb.id)] == [cs.EventAction.CREATE, cs.EventAction.EXPIRE]
    assert store.claim_due(deadline, 10) == []


def test_tzdb_version_names_the_compiled_time_zone_database() -> None:
    assert re.fullmatch(r"20\d\d[a-z]", cs.tzdb_version()), cs.tzdb_version()


def test_a_bad_policy_is_refused_naming_its_field_and_changes_nothing(org: cs.Organization) -> None:
    window = cs.CallingWindow(days=[cs.Weekday.MON], start="08:00", end="08:00")
    bad = dataclasses.replace(cs.default_calling_policy(), windows=[window])
    with pytest.raises(E.ValidationError) as info:
        org.set_calling_policy(bad)
    assert str(info.value).startswith("windows[0].end: ")
    assert org.calling_policy() == cs.default_calling_policy()


def test_arguments_uniffi_would_refuse_with_a_bare_type_error_are_validation_errors(
    store: cs.Store, org: cs.Organization
) -> None:
    # A day, an outcome or a count of the wrong Python type names its field,
    # as every other bad value does (not a TypeError deep in uniffi).
    cb = org.create(new())
    default = cs.default_calling_policy()
    calls = [
        ("outcome", lambda: org.retry(cb.id, "no_answer")),
        ("max_attempts", lambda: org.set_calling_policy(dataclasses.replace(default, max_attempts=-1))),
        (
            "windows[0].days[0]",
            lambda: org.set_calling_policy(
                dataclasses.replace(default, windows=[cs.CallingWindow(days=["mon"], start="08:00", end="21:00")])
            ),
        ),
        (
            "retry_on[1]",
            lambda: org.set_agent_calling_policy(
                "agent_1", dataclasses.replace(default, retry_on=[cs.CallOutcome.BUSY, "busy"])
            ),
        ),
        ("limit", lambda: store.expire_overdue(T0, -1)),
    ]
    for field, call in calls:
        with pytest.raises(E.ValidationError) as info:
            call()
        assert str(info.value).startswith(f"{field}: "), str(info.value)
