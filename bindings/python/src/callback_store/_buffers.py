"""A faster runtime for uniffi 0.32.2's generated Python: same wire format.

Why: every record crosses the FFI as a RustBuffer, and the generated runtime
(`callback_store._native.callback_store`) moves those bytes slowly:

* `_UniffiRustBufferBuilder` writes into a Rust-owned buffer field by field.
  Each write enters a `@contextlib.contextmanager`, takes
  `ctypes.addressof(rbuf.data.contents)` and memmoves a few bytes; the buffer
  starts at 16 bytes and every growth is an FFI `reserve` call. Lowering one
  NewCallback (~500 bytes of instructions, 10 metadata keys) took ~140 us.
* `_UniffiRustBufferStream` reads by slicing a ctypes pointer and calling
  `struct.unpack` with a format string, field by field.
* `alloc_with_builder` and `consume_with_stream` are generator-based context
  managers, entered for every lowered or lifted value.
* `_UniffiRustBuffer.alloc` / `.free` and every other FFI call go through
  `_uniffi_rust_call_with_error`, which builds its call status with
  `_UniffiRustCallStatus.default()` (keyword construction and a nested
  default buffer): about 1 us of a ~10 us call.

Here a builder appends to a `bytearray` and hands Rust the bytes with one
alloc call and one memmove; a stream copies the buffer once into `bytes` and
reads it with precompiled `struct.Struct`s; the string converter reads and
writes its length prefix and bytes in one step; the FFI calls use a
zero-initialised call status (the same value as `.default()`). Nothing else
changes: the generated converters and record classes call these through the
module's globals and class attributes, which `install()` replaces.

The replacement is only right for the runtime it was written against, so
`install()` first checks that the generated module has exactly the pieces it
replaces, with the shapes they have in uniffi 0.32.2, and writes a probe with
both builders to compare the bytes. If not, importing callback_store fails
with `GeneratedRuntimeMismatch` naming the version: a uniffi upgrade (it is
pinned to =0.32.2 in the workspace Cargo.toml) must not run with a patch that
no longer fits. The generated originals stay reachable as `generated` (for
the tests that compare the two).
"""

from __future__ import annotations

import ctypes
import inspect
import math
import struct
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, List, Optional, Tuple, Type, TypeVar

UNIFFI_VERSION = "0.32.2"
"""The uniffi release whose generated Python runtime this module replaces."""

CONTRACT_VERSION = 30
"""The FFI contract version of uniffi 0.32, as the library reports it."""


class GeneratedRuntimeMismatch(ImportError):
    """The generated module is not the uniffi runtime this module replaces."""


# The generated pieces this module uses, set by install(): module globals
# rather than attributes so that the hot paths below read them cheaply.
_InternalError: Type[Exception] = Exception
_CallStatus: Any = None  # _UniffiRustCallStatus
_check_call_status: Any = None  # _uniffi_check_call_status
_ffi_alloc: Any = None  # the library's rustbuffer_alloc
_ffi_free: Any = None  # the library's rustbuffer_free

_byref = ctypes.byref
_memmove = ctypes.memmove
_string_at = ctypes.string_at

# The wire format: big-endian fixed-width scalars (c_size_t is native).
_I8 = struct.Struct(">b")
_U8 = struct.Struct(">B")
_I16 = struct.Struct(">h")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_U32 = struct.Struct(">I")
_I64 = struct.Struct(">q")
_U64 = struct.Struct(">Q")
_F32 = struct.Struct(">f")
_F64 = struct.Struct(">d")
_SIZE_T = struct.Struct("@N")

_pack_i32 = _I32.pack
_unpack_i32 = _I32.unpack_from

_READ_PAST_END = "read past end of rust buffer"  # the generated message


# ---------------------------------------------------------------- FFI calls


def rust_call_with_error(error_ffi_converter: Any, fn: Any, *args: Any) -> Any:
    """`_uniffi_rust_call_with_error`: a zero-initialised status is the
    generated `_UniffiRustCallStatus.default()` (CALL_SUCCESS, empty buffer),
    for a fraction of the cost; errors take the generated path."""
    status = _CallStatus()
    result = fn(*args, _byref(status))
    if status.code:
        _check_call_status(error_ffi_converter, status)
    return result


def rust_call(fn: Any, *args: Any) -> Any:
    """`_uniffi_rust_call`, without the extra call through the function above."""
    status = _CallStatus()
    result = fn(*args, _byref(status))
    if status.code:
        _check_call_status(None, status)
    return result


def alloc(size: int) -> Any:
    """`_UniffiRustBuffer.alloc`: a Rust-owned buffer of `size` bytes."""
    status = _CallStatus()
    rbuf = _ffi_alloc(size, _byref(status))
    if status.code:
        _check_call_status(None, status)
    return rbuf


def free(rbuf: Any) -> None:
    """`_UniffiRustBuffer.free` (a method: `rbuf.free()`)."""
    status = _CallStatus()
    _ffi_free(rbuf, _byref(status))
    if status.code:
        _check_call_status(None, status)


def from_bytes(data: bytes) -> Any:
    """A Rust-owned buffer holding `data`: one alloc, one memmove."""
    size = len(data)
    rbuf = alloc(size)
    if size:
        _memmove(rbuf.data, data, size)
    return rbuf


def take(rbuf: Any) -> bytes:
    """The bytes of a buffer Rust handed over, which is freed here: Python
    reads its own copy and Rust gets the memory back at once."""
    try:
        size = rbuf.len
        return _string_at(rbuf.data, size) if size else b""
    finally:
        free(rbuf)


# ---------------------------------------------------------------- writing

_T = TypeVar("_T")


def _writer(st: struct.Struct, kind: Type[_T]) -> Callable[[RustBufferBuilder, _T], None]:
    pack = st.pack

    def write(self: RustBufferBuilder, v: _T) -> None:
        self.buf += pack(v)

    return write


class RustBufferBuilder:
    """`_UniffiRustBufferBuilder` over a bytearray: no Rust memory is held
    until `finalize()`, so an error while writing leaks nothing and
    `discard()` only drops the bytes."""

    __slots__ = ("buf",)

    def __init__(self) -> None:
        self.buf = bytearray()

    def finalize(self) -> Any:
        """The bytes written, in a new Rust-owned buffer (Rust frees it)."""
        return from_bytes(bytes(self.buf))

    def discard(self) -> None:
        self.buf = bytearray()

    # A builder is its own `alloc_with_builder()` context: with nothing to
    # free on an error, there is nothing to do on exit.
    def __enter__(self) -> RustBufferBuilder:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, value: bytes) -> None:
        self.buf += value

    write_i8 = _writer(_I8, int)
    write_u8 = _writer(_U8, int)
    write_i16 = _writer(_I16, int)
    write_u16 = _writer(_U16, int)
    write_i32 = _writer(_I32, int)
    write_u32 = _writer(_U32, int)
    write_i64 = _writer(_I64, int)
    write_u64 = _writer(_U64, int)
    write_float = _writer(_F32, float)
    write_double = _writer(_F64, float)
    write_c_size_t = _writer(_SIZE_T, int)


def alloc_with_builder(*_args: object) -> RustBufferBuilder:
    """`_UniffiRustBuffer.alloc_with_builder()` (generated with `*args`, so
    that it works from the class and from an instance)."""
    return RustBufferBuilder()


# ---------------------------------------------------------------- reading


def _reader(st: struct.Struct, kind: Type[_T]) -> Callable[[RustBufferStream], _T]:
    size = st.size
    unpack_from = st.unpack_from

    def read(self: RustBufferStream) -> _T:
        off = self.offset
        end = off + size
        if end > self.len:
            raise _InternalError(_READ_PAST_END)
        self.offset = end
        value: _T = unpack_from(self.data, off)[0]
        return value

    return read


class RustBufferStream:
    """`_UniffiRustBufferStream` over `bytes` (one copy of the buffer)."""

    __slots__ = ("data", "len", "offset")

    def __init__(self, data: bytes, len: int) -> None:  # the generated signature
        self.data = data
        self.len = len
        self.offset = 0

    @classmethod
    def from_rust_buffer(cls, buf: Any) -> RustBufferStream:
        """A stream over a copy of `buf`, which stays the caller's."""
        size = buf.len
        return cls(_string_at(buf.data, size) if size else b"", size)

    def remaining(self) -> int:
        return self.len - self.offset

    def read(self, size: int) -> bytes:
        off = self.offset
        end = off + size
        if end > self.len:
            raise _InternalError(_READ_PAST_END)
        self.offset = end
        return self.data[off:end]

    read_i8 = _reader(_I8, int)
    read_u8 = _reader(_U8, int)
    read_i16 = _reader(_I16, int)
    read_u16 = _reader(_U16, int)
    read_i32 = _reader(_I32, int)
    read_u32 = _reader(_U32, int)
    read_i64 = _reader(_I64, int)
    read_u64 = _reader(_U64, int)
    read_float = _reader(_F32, float)
    read_double = _reader(_F64, float)


class _Consuming:
    """`rbuf.consume_with_stream()`: the buffer is copied and freed on entry
    (the generated one frees it on exit, whatever happens: same effect), and
    bytes left unread are an error, as in the generated one."""

    __slots__ = ("stream",)

    def __init__(self, rbuf: Any) -> None:
        data = take(rbuf)
        self.stream = RustBufferStream(data, len(data))

    def __enter__(self) -> RustBufferStream:
        return self.stream

    def __exit__(self, exc_type: Optional[type], *exc: object) -> None:
        left = self.stream.remaining()
        if exc_type is None and left != 0:
            raise RuntimeError(f"junk data left in buffer at end of consume_with_stream {left}")


def consume_with_stream(rbuf: Any) -> _Consuming:
    """`_UniffiRustBuffer.consume_with_stream` (a method: `rbuf.consume_with_stream()`)."""
    return _Consuming(rbuf)


# ---------------------------------------------------------------- strings
# `_UniffiFfiConverterString`: every string, timestamp and JSON object of a
# record goes through read/write; every string argument through lower.


def string_read(buf: Any) -> str:
    if type(buf) is not RustBufferStream:  # the generated stream: only tests make one now
        return generated.string_read(buf)  # type: ignore[no-any-return]
    off = buf.offset
    start = off + 4
    if start > buf.len:
        raise _InternalError(_READ_PAST_END)
    size = _unpack_i32(buf.data, off)[0]
    if size < 0:
        raise _InternalError("Unexpected negative string length")
    end = start + size
    if end > buf.len:
        raise _InternalError(_READ_PAST_END)
    buf.offset = end
    return buf.data[start:end].decode("utf-8")


def string_write(value: str, buf: Any) -> None:
    if type(buf) is not RustBufferBuilder:  # the generated builder: only tests make one now
        generated.string_write(value, buf)
        return
    data = value.encode("utf-8")
    out = buf.buf
    out += _pack_i32(len(data))
    out += data


def string_lift(rbuf: Any) -> str:
    return take(rbuf).decode("utf-8")


def string_lower(value: str) -> Any:
    return from_bytes(value.encode("utf-8"))


# ---------------------------------------------------------------- install


@dataclass(frozen=True)
class Generated:
    """The generated originals that install() replaced."""

    builder: Any  # _UniffiRustBufferBuilder
    stream: Any  # _UniffiRustBufferStream
    alloc_with_builder: Any  # _UniffiRustBuffer.alloc_with_builder (a function)
    consume_with_stream: Any  # _UniffiRustBuffer.consume_with_stream (a function)
    alloc: Any  # _UniffiRustBuffer.alloc
    free: Any  # _UniffiRustBuffer.free (a function)
    rust_call: Any  # _uniffi_rust_call
    rust_call_with_error: Any  # _uniffi_rust_call_with_error
    string_read: Any  # _UniffiFfiConverterString.read, ...
    string_write: Any
    string_lift: Any
    string_lower: Any


generated: Generated  # set by install()


class _Differs(Exception):
    """One piece of the generated module is not as install() expects."""


def _require(ok: bool, what: str) -> None:
    if not ok:  # not `assert`: the check must also run under `python -O`
        raise _Differs(what)


def _params(fn: Any) -> List[str]:
    return [
        ("*" if p.kind is p.VAR_POSITIONAL else "") + p.name
        for p in inspect.signature(fn).parameters.values()
    ]


# The names the two classes define in uniffi 0.32.2, private helpers included:
# a name more or less is a runtime this module was not written against.
_BUILDER_NAMES = {
    "__init__", "finalize", "discard", "_reserve", "_pack_into", "write",
    "write_i8", "write_u8", "write_i16", "write_u16", "write_i32", "write_u32",
    "write_i64", "write_u64", "write_float", "write_double", "write_c_size_t",
}  # fmt: skip
_STREAM_NAMES = {
    "__init__", "from_rust_buffer", "remaining", "_unpack_from", "read",
    "read_i8", "read_u8", "read_i16", "read_u16", "read_i32", "read_u32",
    "read_i64", "read_u64", "read_float", "read_double",
}  # fmt: skip


def _check_shape(native: ModuleType) -> None:
    """Every piece install() replaces or uses has its uniffi 0.32.2 shape."""
    rust_buffer, status = native._UniffiRustBuffer, native._UniffiRustCallStatus
    fields = [(name, kind) for name, kind in rust_buffer._fields_]
    _require(
        fields == [("capacity", ctypes.c_uint64), ("len", ctypes.c_uint64), ("data", ctypes.POINTER(ctypes.c_char))],
        f"_UniffiRustBuffer._fields_ is {fields}",
    )
    _require(
        list(status._fields_) == [("code", ctypes.c_int8), ("error_buf", rust_buffer)] and status.CALL_SUCCESS == 0,
        f"_UniffiRustCallStatus is {status._fields_}, CALL_SUCCESS {status.CALL_SUCCESS}",
    )

    # The two context managers are @contextlib.contextmanager functions.
    for name, params in (("alloc_with_builder", ["*args"]), ("consume_with_stream", ["self"])):
        wrapped = getattr(vars(rust_buffer).get(name), "__wrapped__", None)
        _require(
            inspect.isgeneratorfunction(wrapped) and _params(wrapped) == params,
            f"_UniffiRustBuffer.{name} is not a @contextlib.contextmanager {name}({', '.join(params)})",
        )
    _require(
        isinstance(vars(rust_buffer).get("alloc"), staticmethod) and _params(rust_buffer.alloc) == ["size"],
        "_UniffiRustBuffer.alloc is not a staticmethod alloc(size)",
    )
    _require(
        inspect.isfunction(vars(rust_buffer).get("free")) and _params(rust_buffer.free) == ["self"],
        "_UniffiRustBuffer.free is not a method free(self)",
    )

    for cls, names, init in (
        (native._UniffiRustBufferBuilder, _BUILDER_NAMES, ["self"]),
        (native._UniffiRustBufferStream, _STREAM_NAMES, ["self", "data", "len"]),
    ):
        own = {n for n in vars(cls) if n == "__init__" or not n.startswith("__")}
        _require(own == names, f"{cls.__name__} differs in {sorted(own ^ names)}")
        _require(_params(cls.__init__) == init, f"{cls.__name__}.__init__ takes {_params(cls.__init__)}")
    _require(
        isinstance(vars(native._UniffiRustBufferStream).get("from_rust_buffer"), classmethod),
        "_UniffiRustBufferStream.from_rust_buffer is not a classmethod",
    )

    string = vars(native._UniffiFfiConverterString)
    for name in ("read", "write", "lift", "lower"):
        _require(isinstance(string.get(name), staticmethod), f"_UniffiFfiConverterString.{name} is not a staticmethod")
    for name, params in (
        ("_uniffi_rust_call", ["fn", "*args"]),
        ("_uniffi_rust_call_with_error", ["error_ffi_converter", "fn", "*args"]),
        ("_uniffi_check_call_status", ["error_ffi_converter", "call_status"]),
    ):
        _require(_params(getattr(native, name)) == params, f"{name} takes {_params(getattr(native, name))}")
    _require(issubclass(native.InternalError, Exception), "InternalError is not an exception")

    lib = native._UniffiLib
    ffi_alloc, ffi_free = lib.ffi_callback_store_ffi_rustbuffer_alloc, lib.ffi_callback_store_ffi_rustbuffer_free
    status_ptr = ctypes.POINTER(status)
    _require(
        tuple(ffi_alloc.argtypes) == (ctypes.c_uint64, status_ptr) and ffi_alloc.restype is rust_buffer,
        "rustbuffer_alloc is not declared (u64, *RustCallStatus) -> RustBuffer",
    )
    _require(
        tuple(ffi_free.argtypes) == (rust_buffer, status_ptr) and ffi_free.restype is None,
        "rustbuffer_free is not declared (RustBuffer, *RustCallStatus) -> void",
    )
    contract = lib.ffi_callback_store_ffi_uniffi_contract_version()
    _require(contract == CONTRACT_VERSION, f"the library's FFI contract version is {contract}, not {CONTRACT_VERSION}")


# One value of every scalar at an extreme, and strings (empty, 2-, 3- and
# 4-byte UTF-8): the generated builder and ours must write the same bytes.
_PROBE: Tuple[Tuple[str, Any], ...] = (
    ("i8", -(2**7)), ("u8", 2**8 - 1), ("i16", -(2**15)), ("u16", 2**16 - 1),
    ("i32", -(2**31)), ("u32", 2**32 - 1), ("i64", -(2**63)), ("u64", 2**64 - 1),
    ("float", -1.5), ("double", math.pi), ("c_size_t", 2**16 + 1),
    ("string", ""), ("string", "é€😀"),
)  # fmt: skip


def _probe_bytes(native: ModuleType, builder: Any, write_string: Callable[[str, Any], None]) -> bytes:
    for kind, value in _PROBE:
        if kind == "string":
            write_string(value, builder)
        else:
            getattr(builder, f"write_{kind}")(value)
    rbuf = builder.finalize()
    try:
        return _string_at(rbuf.data, rbuf.len)
    finally:
        native._UniffiRustBuffer.free(rbuf)


def install(native: ModuleType) -> None:
    """Replaces the generated runtime's buffer and call helpers in `native`
    (`callback_store._native.callback_store`); a second call does nothing.
    Raises GeneratedRuntimeMismatch, and replaces nothing, if `native` is not
    the runtime of uniffi UNIFFI_VERSION."""
    global generated, _InternalError, _CallStatus, _check_call_status, _ffi_alloc, _ffi_free
    if getattr(native, "_UniffiRustBufferBuilder", None) is RustBufferBuilder:
        return
    try:
        _check_shape(native)
        rust_buffer, string, lib = native._UniffiRustBuffer, native._UniffiFfiConverterString, native._UniffiLib
        originals = Generated(
            builder=native._UniffiRustBufferBuilder,
            stream=native._UniffiRustBufferStream,
            alloc_with_builder=vars(rust_buffer)["alloc_with_builder"],
            consume_with_stream=vars(rust_buffer)["consume_with_stream"],
            alloc=rust_buffer.alloc,
            free=rust_buffer.free,
            rust_call=native._uniffi_rust_call,
            rust_call_with_error=native._uniffi_rust_call_with_error,
            string_read=string.read,
            string_write=string.write,
            string_lift=string.lift,
            string_lower=string.lower,
        )
        _InternalError = native.InternalError
        _CallStatus = native._UniffiRustCallStatus
        _check_call_status = native._uniffi_check_call_status
        _ffi_alloc = lib.ffi_callback_store_ffi_rustbuffer_alloc
        _ffi_free = lib.ffi_callback_store_ffi_rustbuffer_free
        expected = _probe_bytes(native, originals.builder(), originals.string_write)
        ours = _probe_bytes(native, RustBufferBuilder(), string_write)
        at = next((i for i, (a, b) in enumerate(zip(ours, expected)) if a != b), min(len(ours), len(expected)))
        _require(ours == expected, f"the generated builder writes a probe otherwise (from byte {at} on)")
    except Exception as e:  # whatever differs: a missing name, a signature, the bytes
        raise GeneratedRuntimeMismatch(
            f"callback_store._buffers replaces the Python runtime generated by uniffi {UNIFFI_VERSION}, "
            f"but {native.__name__} differs: {e if isinstance(e, _Differs) else repr(e)}. uniffi is pinned to "
            f"={UNIFFI_VERSION} in the workspace Cargo.toml; after changing it, check _buffers.py "
            "against the new generated runtime, then update UNIFFI_VERSION."
        ) from e
    generated = originals

    for owner, name, value in (
        (native, "_UniffiRustBufferBuilder", RustBufferBuilder),
        (native, "_UniffiRustBufferStream", RustBufferStream),
        (native, "_uniffi_rust_call", rust_call),
        (native, "_uniffi_rust_call_with_error", rust_call_with_error),
        (rust_buffer, "alloc_with_builder", staticmethod(alloc_with_builder)),
        (rust_buffer, "consume_with_stream", consume_with_stream),
        (rust_buffer, "alloc", staticmethod(alloc)),
        (rust_buffer, "free", free),
        (string, "read", staticmethod(string_read)),
        (string, "write", staticmethod(string_write)),
        (string, "lift", staticmethod(string_lift)),
        (string, "lower", staticmethod(string_lower)),
    ):
        setattr(owner, name, value)
