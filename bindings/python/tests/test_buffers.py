"""The fast RustBuffer runtime (callback_store/_buffers.py) against the one
uniffi generated: same bytes written, same values read, same errors."""

from __future__ import annotations

import ctypes
import datetime
import math
import struct
import types
from typing import Any, Callable, List, Tuple

import pytest
from conftest import T0, new

import callback_store as cs
from callback_store import _buffers

native: Any = cs._native
generated = _buffers.generated
String = native._UniffiFfiConverterString


def rust_bytes(rbuf: Any) -> bytes:
    """The bytes of a Rust-owned buffer, which is freed."""
    try:
        return ctypes.string_at(rbuf.data, rbuf.len)
    finally:
        rbuf.free()


def written_by_both(write: Callable[[Any], object]) -> Tuple[bytes, bytes]:
    """(bytes the generated builder ends up with, bytes ours ends up with)."""
    theirs, ours = generated.builder(), _buffers.RustBufferBuilder()
    write(theirs)
    write(ours)
    return rust_bytes(theirs.finalize()), rust_bytes(ours.finalize())


def rust_buffer_of(data: bytes) -> Any:
    return _buffers.from_bytes(data)


def test_the_fast_path_is_installed() -> None:
    rust_buffer = vars(native._UniffiRustBuffer)
    assert native._UniffiRustBufferBuilder is _buffers.RustBufferBuilder
    assert native._UniffiRustBufferStream is _buffers.RustBufferStream
    assert rust_buffer["alloc_with_builder"].__func__ is _buffers.alloc_with_builder
    assert rust_buffer["consume_with_stream"] is _buffers.consume_with_stream
    assert rust_buffer["alloc"].__func__ is _buffers.alloc
    assert rust_buffer["free"] is _buffers.free
    assert native._uniffi_rust_call is _buffers.rust_call
    assert native._uniffi_rust_call_with_error is _buffers.rust_call_with_error
    for name in ("read", "write", "lift", "lower"):
        assert getattr(String, name) is getattr(_buffers, f"string_{name}")
    # The generated originals stay reachable, and are not ours.
    assert generated.builder.__name__ == "_UniffiRustBufferBuilder"
    assert generated.stream.__name__ == "_UniffiRustBufferStream"
    assert generated.consume_with_stream.__wrapped__.__name__ == "consume_with_stream"
    # A second install is a no-op.
    _buffers.install(native)
    assert _buffers.generated is generated


F32_MAX = struct.unpack(">f", b"\x7f\x7f\xff\xff")[0]
F32_TINY = struct.unpack(">f", b"\x00\x00\x00\x01")[0]
SIZES = {"i8": 1, "u8": 1, "i16": 2, "u16": 2, "i32": 4, "u32": 4, "i64": 8, "u64": 8, "float": 4, "double": 8}
SCALARS: List[Tuple[str, List[Any]]] = [
    ("i8", [-(2**7), -1, 0, 1, 2**7 - 1]),
    ("u8", [0, 1, 2**8 - 1]),
    ("i16", [-(2**15), -1, 0, 2**15 - 1]),
    ("u16", [0, 2**16 - 1]),
    ("i32", [-(2**31), -1, 0, 2**31 - 1]),
    ("u32", [0, 2**32 - 1]),
    ("i64", [-(2**63), -1, 0, 2**63 - 1]),
    ("u64", [0, 2**63, 2**64 - 1]),
    ("float", [0.0, -0.0, 1.5, -3.25, 0.1, F32_MAX, -F32_MAX, F32_TINY, math.inf, -math.inf, math.nan]),
    ("double", [0.0, -0.0, math.pi, -1e308, 1.7976931348623157e308, 5e-324, math.inf, -math.inf, math.nan]),
]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return bool(a == b) and type(a) is type(b) and math.copysign(1, a) == math.copysign(1, b)


@pytest.mark.parametrize("kind,values", SCALARS, ids=[k for k, _ in SCALARS])
def test_every_scalar_is_written_as_the_generated_builder_writes_it_and_read_back(kind: str, values: List[Any]) -> None:
    theirs, ours = written_by_both(lambda b: [getattr(b, f"write_{kind}")(v) for v in values])
    assert ours == theirs
    assert len(ours) == len(values) * SIZES[kind]

    stream = _buffers.RustBufferStream(ours, len(ours))
    ours_read = [getattr(stream, f"read_{kind}")() for _ in values]
    assert stream.remaining() == 0
    rbuf = rust_buffer_of(theirs)
    try:
        their_stream = generated.stream.from_rust_buffer(rbuf)
        theirs_read = [getattr(their_stream, f"read_{kind}")() for _ in values]
    finally:
        rbuf.free()
    assert all(same(a, b) for a, b in zip(ours_read, theirs_read)), (ours_read, theirs_read)
    if kind != "float":  # a float is rounded to f32 on the way, by both
        assert all(same(a, b) for a, b in zip(ours_read, values))


def test_c_size_t_is_written_as_the_generated_builder_writes_it() -> None:
    theirs, ours = written_by_both(lambda b: [b.write_c_size_t(v) for v in (0, 1, 2**32 + 7)])
    assert ours == theirs


@pytest.mark.parametrize("kind,value", [("u8", 256), ("i8", -129), ("u32", -1), ("i64", 2**63), ("u64", 2**64)])
def test_an_out_of_range_integer_is_refused_as_the_generated_builder_refuses_it(kind: str, value: int) -> None:
    with pytest.raises(struct.error) as theirs:
        getattr(generated.builder(), f"write_{kind}")(value)
    with pytest.raises(struct.error) as ours:
        getattr(_buffers.RustBufferBuilder(), f"write_{kind}")(value)
    assert str(ours.value) == str(theirs.value)


STRINGS = {
    "empty": "",
    "ascii": "+12015551234",
    "latin1": "café crème",
    "three_bytes": "€ 100 ≠ ∞",
    "four_bytes": "📞 call back 😀 𝄞",
    "nul": "a\0b",
    "one_megabyte": ("x" * 1000 + "é€😀") * 1000,
}


@pytest.mark.parametrize("value", list(STRINGS.values()), ids=list(STRINGS))
def test_a_string_is_written_as_the_generated_converter_writes_it_and_read_back(value: str) -> None:
    theirs, ours = written_by_both(lambda b: (String.write(value, b), String.write("after", b)))
    assert ours == theirs
    assert ours[:4] == struct.pack(">i", len(value.encode("utf-8")))

    # Read back by ours and by the generated stream.
    stream = _buffers.RustBufferStream(ours, len(ours))
    assert (String.read(stream), String.read(stream)) == (value, "after")
    assert stream.remaining() == 0
    rbuf = rust_buffer_of(theirs)
    try:
        their_stream = generated.stream.from_rust_buffer(rbuf)
        assert (generated.string_read(their_stream), generated.string_read(their_stream)) == (value, "after")
    finally:
        rbuf.free()

    # As an argument (lower) and a return value (lift): the bare UTF-8 bytes.
    assert rust_bytes(String.lower(value)) == rust_bytes(generated.string_lower(value)) == value.encode("utf-8")
    assert String.lift(generated.string_lower(value)) == value
    assert generated.string_lift(String.lower(value)) == value


def test_a_string_that_is_not_utf8_encodable_is_refused_as_the_generated_converter_refuses_it() -> None:
    with pytest.raises(UnicodeEncodeError):
        String.write("\ud800", generated.builder())
    with pytest.raises(UnicodeEncodeError):
        String.write("\ud800", _buffers.RustBufferBuilder())
    with pytest.raises(UnicodeEncodeError):
        String.lower("\ud800")


@pytest.mark.parametrize("kind", list(SIZES))
def test_reading_past_the_end_raises_the_generated_internal_error(kind: str) -> None:
    size = SIZES[kind]
    stream = _buffers.RustBufferStream(b"\x00" * (size - 1), size - 1)
    with pytest.raises(native.InternalError, match="read past end of rust buffer"):
        getattr(stream, f"read_{kind}")()
    assert native.InternalError is cs.InternalError


def test_reading_a_string_past_the_end_raises_the_generated_internal_error() -> None:
    for data in (b"", b"\x00\x00\x00", struct.pack(">i", 5) + b"abcd"):
        stream = _buffers.RustBufferStream(data, len(data))
        with pytest.raises(cs.InternalError, match="read past end of rust buffer"):
            String.read(stream)
    stream = _buffers.RustBufferStream(b"ab", 2)
    with pytest.raises(cs.InternalError, match="read past end of rust buffer"):
        stream.read(3)
    negative = struct.pack(">i", -1) + b"abcd"
    with pytest.raises(cs.InternalError, match="Unexpected negative string length"):
        String.read(_buffers.RustBufferStream(negative, len(negative)))


def test_bytes_left_over_at_the_end_of_consume_with_stream_raise() -> None:
    with pytest.raises(RuntimeError, match="junk data left in buffer at end of consume_with_stream 3"):
        with rust_buffer_of(b"\x07abc").consume_with_stream() as stream:
            assert stream.read_u8() == 7
    # Every record converter lifts through it: a record with bytes after it.
    status = struct.pack(">i", 1)
    assert native._UniffiFfiConverterTypeStatus.lift(rust_buffer_of(status)) is cs.Status.SCHEDULED
    with pytest.raises(RuntimeError, match="junk data .* 1$"):
        native._UniffiFfiConverterTypeStatus.lift(rust_buffer_of(status + b"\x00"))
    # An error while reading is the one that propagates.
    with pytest.raises(cs.InternalError, match="read past end"):
        native._UniffiFfiConverterTypeStatus.lift(rust_buffer_of(b"\x00"))


def test_an_error_inside_alloc_with_builder_propagates_and_leaves_nothing_to_free() -> None:
    with pytest.raises(ZeroDivisionError):
        with native._UniffiRustBuffer.alloc_with_builder() as builder:
            builder.write_i32(1)
            1 / 0
    builder.discard()
    assert bytes(builder.buf) == b""


def full_new_callback() -> cs.NewCallback:
    return cs.NewCallback(
        to_number="+12015551234",
        scheduled_at=datetime.datetime(2030, 1, 1, 11, 30, tzinfo=datetime.timezone(datetime.timedelta(hours=2))),
        source_session_id="sess_é_1",
        agent_id="agent_😀",
        phone_number_id="pn_7",
        from_number="+12015550000",
        reason="customer asked for a callback",
        instructions="Call back about the renewal € ≠ ∞ " * 15,
        summary="Discussed the renewal; wants numbers in writing.",
        pipeline_config={"voice": "alloy", "speed": 1.25, "tools": ["crm", {"depth": 2}]},
        metadata={f"key_{k}": f"value-{k}" for k in range(8)} | {"n": -(2**53), "ok": True, "none": None},
        idempotency_key="idem_1",
    )


def test_a_record_with_every_field_set_round_trips_through_rust(org: cs.Organization, clock: cs.ManualClock) -> None:
    new = full_new_callback()
    created = org.create(new)
    for field in ("to_number", "scheduled_at", "source_session_id", "agent_id", "phone_number_id", "from_number",
                  "reason", "instructions", "summary", "pipeline_config", "metadata"):  # fmt: skip
        assert getattr(created, field) == getattr(new, field), field
    assert created.scheduled_at.tzinfo == datetime.timezone.utc
    assert org.get(created.id) == created

    # The fields only transitions set: dispatched, they are all set.
    clock.set(T0 + datetime.timedelta(days=2))
    org.dispatch(created.id)
    done = org.complete_dispatch(created.id, "sess_call_😀")
    got = org.get(created.id)
    assert got == done
    assert None not in (got.created_session_id, got.attempted_at, got.dispatched_at)
    assert org.create(new).id == created.id  # the same idempotency key

    # The whole record: lowered by ours and by the generated builder, the
    # same bytes; lifted back, the same record.
    record = native._UniffiFfiConverterTypeCallback
    theirs, ours = written_by_both(lambda b: record.write(got, b))
    assert ours == theirs
    assert record.lift(rust_buffer_of(ours)) == got
    page = org.list(cs.ListQuery(limit=5))
    assert page.callbacks == [got]


# ---------------------------------------------------------------- the check


@pytest.fixture
def pristine(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """A stand-in for the generated module as uniffi wrote it: the generated
    originals put back (until the test ends) on a copy of its namespace."""
    rust_buffer = native._UniffiRustBuffer
    monkeypatch.setattr(rust_buffer, "alloc_with_builder", generated.alloc_with_builder)
    monkeypatch.setattr(rust_buffer, "consume_with_stream", generated.consume_with_stream)
    monkeypatch.setattr(rust_buffer, "alloc", staticmethod(generated.alloc))
    monkeypatch.setattr(rust_buffer, "free", generated.free)
    for name in ("read", "write", "lift", "lower"):
        monkeypatch.setattr(String, name, staticmethod(getattr(generated, f"string_{name}")))
    module = types.ModuleType(native.__name__)
    vars(module).update({k: v for k, v in vars(native).items() if not k.startswith("__")})
    module._UniffiRustBufferBuilder = generated.builder  # type: ignore[attr-defined]
    module._UniffiRustBufferStream = generated.stream  # type: ignore[attr-defined]
    module._uniffi_rust_call = generated.rust_call  # type: ignore[attr-defined]
    module._uniffi_rust_call_with_error = generated.rust_call_with_error  # type: ignore[attr-defined]
    return module


def test_the_check_accepts_the_generated_runtime_as_uniffi_wrote_it(
    pristine: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_buffers, "generated", generated)  # put back at the end
    _buffers.install(pristine)
    assert pristine._UniffiRustBufferBuilder is _buffers.RustBufferBuilder
    assert _buffers.generated == generated


def _builder_with_a_new_write() -> type:
    """The generated builder's copy with one write more, as a newer uniffi might have."""
    body = {k: v for k, v in vars(generated.builder).items() if k not in ("__dict__", "__weakref__")}
    return type("_UniffiRustBufferBuilder", (), {**body, "write_bytes": lambda self, v: None})


@pytest.mark.parametrize(
    "change,named",
    [
        (lambda m, mp: setattr(m, "_UniffiRustBufferBuilder", _builder_with_a_new_write()), "write_bytes"),
        (lambda m, mp: mp.delattr(generated.stream, "read_i8"), "read_i8"),
        (lambda m, mp: mp.setattr(m._UniffiRustBuffer, "consume_with_stream", lambda self: None), "consume_with_stream"),
        (lambda m, mp: mp.setattr(m._UniffiRustBuffer, "alloc", staticmethod(lambda n, m=0: None)), "alloc"),
        (lambda m, mp: delattr(m, "_uniffi_check_call_status"), "_uniffi_check_call_status"),
        (  # the same names, another wire format: strings with a u64 length
            lambda m, mp: mp.setattr(
                String, "write", staticmethod(lambda v, b: (b.write_u64(len(v.encode())), b.write(v.encode())))
            ),
            "writes a probe otherwise",
        ),
    ],
    ids=["builder_gained_a_method", "stream_lost_a_method", "not_a_context_manager", "alloc_signature",
         "missing_function", "wire_format"],  # fmt: skip
)
def test_a_generated_runtime_other_than_uniffi_0_32_2s_fails_the_import_naming_the_version(
    pristine: types.ModuleType, monkeypatch: pytest.MonkeyPatch, change: Any, named: str
) -> None:
    change(pristine, monkeypatch)
    with pytest.raises(_buffers.GeneratedRuntimeMismatch) as refused:
        _buffers.install(pristine)
    message = str(refused.value)
    assert f"uniffi {_buffers.UNIFFI_VERSION}" in message and "=0.32.2 in the workspace Cargo.toml" in message
    assert named in message
    assert isinstance(refused.value, ImportError)
    assert _buffers.generated is generated  # nothing replaced
    assert pristine._UniffiRustBufferBuilder is not _buffers.RustBufferBuilder
    assert _buffers.UNIFFI_VERSION == "0.32.2"


def test_each_json_object_and_timestamp_argument_is_converted_once(
    org: cs.Organization, monkeypatch: pytest.MonkeyPatch
) -> None:
    from callback_store import _convert

    calls: List[str] = []
    lower_json, lower_timestamp = _convert.lower_json, _convert.lower_timestamp

    def counting_json(value: Any) -> str:
        calls.append("json")
        return lower_json(value)

    def counting_timestamp(value: Any) -> str:
        calls.append("timestamp")
        return lower_timestamp(value)

    monkeypatch.setattr(_convert, "lower_json", counting_json)
    monkeypatch.setattr(_convert, "lower_timestamp", counting_timestamp)
    metadata = {"crm": "123", "tags": ["a", "b"]}
    org.create_many([new(1, metadata=metadata, pipeline_config={"voice": "x"}), new(2)])
    # The first callback's two objects (the second leaves both out: None) and
    # both scheduled_at: uniffi's own argument check would double each.
    assert sorted(calls) == ["json"] * 2 + ["timestamp"] * 2


def test_a_value_the_converters_refuse_is_still_a_validation_error_naming_the_field(org: cs.Organization) -> None:
    with pytest.raises(cs.CallbackStoreError.ValidationError, match="^metadata:"):
        org.create(new(1, metadata={"bad": {1, 2}}))
    with pytest.raises(cs.CallbackStoreError.ValidationError, match="^scheduled_at:"):
        org.create(cs.NewCallback(to_number="+12015551234", scheduled_at=datetime.datetime(2030, 1, 1)))
    assert org.list(cs.ListQuery()).callbacks == []
