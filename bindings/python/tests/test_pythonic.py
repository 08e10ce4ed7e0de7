"""Python like Python: records are dataclasses with their fields, signatures
show the real parameters and defaults, DataFrames have columns and datetimes.
(uniffi 0.32.2 alone gives `Callback()`, `asdict(cb) == {}`, `(*args,
**kwargs)` and `<object object at ...>`: see callback_store/_pythonic.py.)"""

from __future__ import annotations

import dataclasses
import datetime
import inspect
import pydoc
import subprocess
import sys
from typing import Any, Iterator, List, Tuple

import pandas as pd
import pytest
from conftest import T0, new

import callback_store as cs
from callback_store._native import callback_store as native

RECORDS = [
    cs.ApiKey,
    cs.Callback,
    cs.CallbackEvent,
    cs.CallingPolicy,
    cs.CallingWindow,
    cs.Change,
    cs.ChangePage,
    cs.Completion,
    cs.CompletionOutcome,
    cs.CreatedApiKey,
    cs.DispatchOptions,
    cs.DispatchReport,
    cs.ItemError,
    cs.ListQuery,
    cs.NewCallback,
    cs.Page,
    cs.StatusCount,
    cs.StoreOptions,
]
TIMESTAMPS = [
    "scheduled_at",
    "attempted_at",
    "dispatched_at",
    "cancelled_at",
    "created_at",
    "updated_at",
    "expires_at",
]


def exported_callables() -> Iterator[Tuple[str, Any]]:
    """Every public function, method and constructor the package exports."""
    for name in cs.__all__:
        value = getattr(cs, name)
        if inspect.isfunction(value):
            yield name, value
        elif isinstance(value, type) and not issubclass(value, BaseException):
            yield name, value
            for attr, member in vars(value).items():
                if not attr.startswith("_") and callable(getattr(value, attr)):
                    yield f"{name}.{attr}", getattr(value, attr)


def test_every_record_declares_its_constructor_parameters_as_fields() -> None:
    generated = [
        v
        for v in vars(native).values()
        if isinstance(v, type) and dataclasses.is_dataclass(v)
    ]
    assert sorted(c.__name__ for c in generated) == sorted(c.__name__ for c in RECORDS)
    for cls in RECORDS:
        fields = [f.name for f in dataclasses.fields(cls)]
        assert fields and fields == list(inspect.signature(cls).parameters), cls.__name__


def test_repr_shows_every_field(org: cs.Organization) -> None:
    cb = org.create(new(to_number="+12015550100", metadata={"lead": 42}))
    text = repr(cb)
    assert text.startswith(f"Callback(id={cb.id!r}, organization_id='org_acme', ")
    for f in dataclasses.fields(cb):
        assert f"{f.name}=" in text
    assert "to_number='+12015550100'" in text and "metadata={'lead': 42}" in text
    # str is the repr, as for any dataclass; a list of records shows them too.
    assert str(cb) == text and repr([cb]) == f"[{text}]"


def test_equal_fields_make_equal_records_and_another_type_is_never_equal(org: cs.Organization) -> None:
    cb = org.create(new())
    assert cb == org.get(cb.id)
    assert cb != org.cancel(cb.id)  # status, cancelled_at, updated_at differ
    assert cs.ListQuery(limit=5) == cs.ListQuery(limit=5) != cs.ListQuery(limit=6)
    # uniffi's own __eq__ read the other side's fields: AttributeError.
    assert cb != None and cb != cb.id and cb != cs.to_api_dict(cb)  # noqa: E711


def test_asdict_has_every_field_nested_records_included(org: cs.Organization) -> None:
    cb = org.create(new(metadata={"lead": 42}))
    as_dict = dataclasses.asdict(cb)
    assert list(as_dict) == list(cs.CALLBACK_KEYS)
    assert as_dict["id"] == cb.id and as_dict["metadata"] == {"lead": 42}
    assert as_dict["scheduled_at"] == cb.scheduled_at and as_dict["status"] is cs.Status.SCHEDULED
    page = dataclasses.asdict(org.list())
    assert page == {"callbacks": [as_dict], "next_cursor": None}
    assert dataclasses.astuple(cs.StatusCount(status=cs.Status.SCHEDULED, count=1)) == (cs.Status.SCHEDULED, 1)


def test_replace_builds_a_new_record_the_store_accepts(org: cs.Organization) -> None:
    template = new(to_number="+12015550100", reason="call back")
    other = dataclasses.replace(template, to_number="+12015550199")
    assert (other.to_number, other.reason) == ("+12015550199", "call back")
    assert org.create(other).to_number == "+12015550199"


def test_pandas_dataframe_of_records_has_a_column_per_field(org: cs.Organization) -> None:
    for i in range(3):
        org.create(new(hours=i + 1, metadata={"i": i}))
    frame = pd.DataFrame(org.list().callbacks)
    assert list(frame.columns) == list(cs.CALLBACK_KEYS) and len(frame) == 3
    assert sorted(m["i"] for m in frame["metadata"]) == [0, 1, 2]


def test_to_dataframe_gives_timezone_aware_datetime_columns(org: cs.Organization) -> None:
    first = org.create(new(hours=1))
    org.create(new(hours=2))
    org.cancel(first.id)
    frame = cs.to_dataframe(org.list(cs.ListQuery(order=cs.Order.SCHEDULED_ASC)))
    assert list(frame.columns) == list(cs.CALLBACK_KEYS) and len(frame) == 2
    for name in TIMESTAMPS:
        dtype = frame[name].dtype
        assert isinstance(dtype, pd.DatetimeTZDtype) and str(dtype.tz) == "UTC", (name, dtype)
    assert frame["scheduled_at"].tolist() == [
        pd.Timestamp(T0 + datetime.timedelta(hours=1)),
        pd.Timestamp(T0 + datetime.timedelta(hours=2)),
    ]
    assert frame["cancelled_at"].iloc[0] == pd.Timestamp(T0) and pd.isna(frame["cancelled_at"].iloc[1])
    assert frame["status"].tolist() == ["cancelled", "scheduled"]  # the API's strings
    # A list works as a page does; no row still has every typed column.
    assert cs.to_dataframe(org.list().callbacks)["id"].tolist() == frame["id"].tolist()[::-1]
    empty = cs.to_dataframe([])
    assert list(empty.columns) == list(cs.CALLBACK_KEYS) and len(empty) == 0
    assert all(isinstance(empty[n].dtype, pd.DatetimeTZDtype) for n in TIMESTAMPS)


def test_to_dataframe_takes_any_record_list_with_api_column_names(org: cs.Organization) -> None:
    cb = org.create(new())
    org.cancel(cb.id)
    events = cs.to_dataframe(org.history(cb.id))
    assert list(events.columns) == ["callback_id", "action", "from", "to", "at", "detail"]
    assert isinstance(events["at"].dtype, pd.DatetimeTZDtype)
    assert events["action"].tolist() == ["create", "cancel"] and events["to"].tolist() == ["scheduled", "cancelled"]
    with pytest.raises(TypeError, match="one type"):
        cs.to_dataframe([cb, cs.StatusCount(status=cs.Status.SCHEDULED, count=1)])


def test_to_records_keeps_the_apis_timestamp_strings(org: cs.Organization) -> None:
    org.create(new(hours=1))
    (row,) = cs.to_records(org.list())
    assert row["scheduled_at"] == "2030-01-01T10:00:00Z" and row["cancelled_at"] is None


def test_importing_the_package_does_not_import_pandas() -> None:
    code = "import sys, callback_store; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_wrapped_methods_show_their_real_parameters() -> None:
    expected = {
        cs.Organization.list: ["self", "query"],
        cs.Organization.complete_dispatch: ["self", "id", "created_session_id", "claim_token"],
        cs.Organization.fail_dispatch: ["self", "id", "failure_cause", "claim_token"],
        cs.Store.claim_due: ["self", "now", "limit"],
        cs.Store.dispatch_due: ["self", "dispatcher", "now", "limit"],
        cs.Store.place_call: ["self", "dispatcher", "claim"],
        cs.Store.claim_by_token: ["self", "id", "token"],
    }
    for method, params in expected.items():
        assert hasattr(method, "__wrapped__"), f"{method.__qualname__} is not one of the checked wrappers"
        assert list(inspect.signature(method).parameters) == params, method.__qualname__
        doc = pydoc.plain(pydoc.render_doc(method))
        assert f"{method.__name__}{inspect.signature(method)}" in doc, doc
        assert "*args" not in doc and str(inspect.getdoc(method)).splitlines()[0] in doc
    claim_token = inspect.signature(cs.Organization.complete_dispatch).parameters["claim_token"]
    assert claim_token.default is None and claim_token.annotation == "typing.Optional[str]"


def test_optional_parameters_show_none_as_default() -> None:
    checked: List[str] = []
    for name, value in exported_callables():
        try:
            sig = inspect.signature(value)
        except ValueError:  # a builtin without a signature (an enum's)
            continue
        assert "<object object" not in str(sig), f"{name}{sig}"
        assert all(p.default is not native._DEFAULT for p in sig.parameters.values())
        checked.append(name)
    for name in ["NewCallback", "ListQuery", "StoreOptions", "Store.open", "Organization.cancel"]:
        assert name in checked
    assert inspect.signature(cs.NewCallback).parameters["reason"].default is None
    assert inspect.signature(cs.Store.open_in_memory).parameters["options"].default is None
    assert "<object object" not in pydoc.plain(pydoc.render_doc(cs)) and "<object object" not in pydoc.plain(
        pydoc.render_doc(cs.Organization)
    )
    assert [f.default for f in dataclasses.fields(cs.ListQuery)] == [None] * 9
    assert dataclasses.fields(cs.NewCallback)[0].default is dataclasses.MISSING  # to_number is required


# Run in a child process: a copied handle is freed when the copy dies, under
# the original (uniffi 0.32.2 alone: `malloc(): unaligned tcache chunk
# detected`, the process aborted), which would take pytest down with it.
COPIES = """
import copy, dataclasses, datetime, gc
import callback_store as cs
t0 = datetime.datetime(2030, 1, 1, 9, tzinfo=datetime.timezone.utc)
clock = cs.ManualClock(t0)
options = cs.StoreOptions(clock=clock)
store = cs.Store.open_in_memory(options)
org = store.organization("org_a")
claim = org.dispatch(org.create(cs.NewCallback(to_number="+12015551234", scheduled_at=t0)).id)
same = [
    dataclasses.asdict(options)["clock"] is clock,  # asdict deep-copies
    copy.deepcopy(options).clock is clock,
    copy.copy(clock) is clock,
    copy.deepcopy(store) is store,
    copy.deepcopy(org) is org,
    copy.deepcopy(claim) is claim,
]
copies = [copy.deepcopy(clock) for _ in range(3)]
del copies
gc.collect()
others = [cs.ManualClock(t0 + datetime.timedelta(days=365)) for _ in range(50)]
print(same, clock.now() == t0, len(others))
"""


def test_a_copy_of_an_object_is_the_object_never_a_second_owner() -> None:
    out = subprocess.run([sys.executable, "-c", COPIES], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("]")[0] == "[True, True, True, True, True, True"
    assert out.stdout.split("]")[1].split() == ["True", "50"]
