"""A proposal for bindings/python, not used by the bench: faster RustBuffer
writing and reading for uniffi's generated Python, same wire format.

uniffi 0.32's generated runtime writes a record field by field into a Rust-owned
buffer: every write enters a @contextlib.contextmanager, may call Rust to grow
the buffer, and memmoves a few bytes through ctypes; every read slices a ctypes
pointer. Lowering one NewCallback of the bench (~500 bytes of instructions, 10
metadata keys) costs ~165 us that way. This version builds the bytes in a
bytearray and hands Rust one buffer (one alloc call, one memmove), and reads
from one bytes copy with precompiled structs: ~40 us per NewCallback, which
halves the schedule phase of bench_peers.py (create_many of 10k).

Adoption: copy into bindings/python/src/callback_store/ and call `apply()` from
its __init__.py, next to the existing wrapper of
`_uniffi_trait_interface_call_with_error`. Checked: the binding's Python suite
(228 tests, conformance vectors included) passes with it applied.
"""

from __future__ import annotations

import ctypes
import importlib
import struct
from typing import Any

_STRUCTS = {f: struct.Struct(f) for f in (">b", ">B", ">h", ">H", ">i", ">I", ">q", ">Q", ">f", ">d")}


def apply() -> None:
    native: Any = importlib.import_module("callback_store._native.callback_store")
    rust_buffer = native._UniffiRustBuffer
    S = _STRUCTS

    class Builder:
        __slots__ = ("buf",)

        def __init__(self) -> None:
            self.buf = bytearray()

        def finalize(self) -> Any:
            size = len(self.buf)
            rbuf = rust_buffer.alloc(size)
            if size:
                ctypes.memmove(rbuf.data, bytes(self.buf), size)
            rbuf.len = size
            return rbuf

        def discard(self) -> None:
            self.buf = bytearray()

        def write(self, value: bytes) -> None:
            self.buf += value

        def write_i8(self, v: int) -> None: self.buf += S[">b"].pack(v)
        def write_u8(self, v: int) -> None: self.buf += S[">B"].pack(v)
        def write_i16(self, v: int) -> None: self.buf += S[">h"].pack(v)
        def write_u16(self, v: int) -> None: self.buf += S[">H"].pack(v)
        def write_i32(self, v: int) -> None: self.buf += S[">i"].pack(v)
        def write_u32(self, v: int) -> None: self.buf += S[">I"].pack(v)
        def write_i64(self, v: int) -> None: self.buf += S[">q"].pack(v)
        def write_u64(self, v: int) -> None: self.buf += S[">Q"].pack(v)
        def write_float(self, v: float) -> None: self.buf += S[">f"].pack(v)
        def write_double(self, v: float) -> None: self.buf += S[">d"].pack(v)
        def write_c_size_t(self, v: int) -> None: self.buf += struct.pack("@N", v)

    class Stream:
        __slots__ = ("data", "len", "offset")

        def __init__(self, data: bytes, len: int) -> None:
            self.data = data
            self.len = len
            self.offset = 0

        @classmethod
        def from_rust_buffer(cls, buf: Any) -> "Stream":
            return cls(ctypes.string_at(buf.data, buf.len) if buf.len else b"", buf.len)

        def remaining(self) -> int:
            return self.len - self.offset

        def _unpack(self, st: struct.Struct) -> Any:
            off = self.offset
            if off + st.size > self.len:
                raise native.InternalError("read past end of rust buffer")
            self.offset = off + st.size
            return st.unpack_from(self.data, off)[0]

        def _unpack_from(self, size: int, format: str) -> Any:
            return self._unpack(S[format])

        def read(self, size: int) -> bytes:
            off = self.offset
            if off + size > self.len:
                raise native.InternalError("read past end of rust buffer")
            self.offset = off + size
            return self.data[off : off + size]

        def read_i8(self) -> int: return self._unpack(S[">b"])
        def read_u8(self) -> int: return self._unpack(S[">B"])
        def read_i16(self) -> int: return self._unpack(S[">h"])
        def read_u16(self) -> int: return self._unpack(S[">H"])
        def read_i32(self) -> int: return self._unpack(S[">i"])
        def read_u32(self) -> int: return self._unpack(S[">I"])
        def read_i64(self) -> int: return self._unpack(S[">q"])
        def read_u64(self) -> int: return self._unpack(S[">Q"])
        def read_float(self) -> float: return self._unpack(S[">f"])
        def read_double(self) -> float: return self._unpack(S[">d"])

    class Building:  # `with _UniffiRustBuffer.alloc_with_builder() as builder:`
        __slots__ = ("builder",)

        def __init__(self) -> None:
            self.builder = Builder()

        def __enter__(self) -> Builder:
            return self.builder

        def __exit__(self, *exc: Any) -> bool:
            return False

    class Consuming:  # `with rbuf.consume_with_stream() as stream:` frees rbuf
        __slots__ = ("rbuf", "stream")

        def __init__(self, rbuf: Any) -> None:
            self.rbuf = rbuf

        def __enter__(self) -> Stream:
            self.stream = Stream.from_rust_buffer(self.rbuf)
            return self.stream

        def __exit__(self, exc_type: Any, *exc: Any) -> bool:
            self.rbuf.free()
            if exc_type is None and self.stream.remaining() != 0:
                raise RuntimeError(
                    f"junk data left in buffer at end of consume_with_stream {self.stream.remaining()}"
                )
            return False

    native._UniffiRustBufferBuilder = Builder
    native._UniffiRustBufferStream = Stream
    rust_buffer.alloc_with_builder = staticmethod(lambda *args: Building())
    rust_buffer.consume_with_stream = lambda self: Consuming(self)
