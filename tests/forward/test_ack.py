"""The forwarder reads the server's OTLP acknowledgement by hand: checked against the protobuf
runtime on generated and on arbitrary bytes."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

import corral
from corral.forward.wire import read_export_response

_INT64 = st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)


def _runtime(data: bytes) -> tuple[int, str] | None:
    try:
        ack = ExportLogsServiceResponse.FromString(data)
    except Exception:
        return None
    return ack.partial_success.rejected_log_records, ack.partial_success.error_message


def _ours(data: bytes) -> tuple[int, str] | None:
    try:
        return read_export_response(data)
    except ValueError:
        return None


@given(_INT64, st.text(), st.booleans())
def test_what_the_runtime_writes_is_read_back(rejected: int, message: str, set_it: bool) -> None:
    ack = ExportLogsServiceResponse()
    if set_it:
        ack.partial_success.rejected_log_records = rejected
        ack.partial_success.error_message = message
    data = ack.SerializeToString()
    assert read_export_response(data) == (_runtime(data) or (0, ""))


@given(st.lists(st.tuples(_INT64, st.text(max_size=20)), min_size=1, max_size=3),
       st.binary(max_size=8))
def test_repeated_messages_merge_and_the_last_value_wins(
        parts: list[tuple[int, str]], unknown: bytes) -> None:
    data = b""
    for rejected, message in parts:
        one = ExportLogsServiceResponse()
        one.partial_success.rejected_log_records = rejected
        one.partial_success.error_message = message
        data += one.SerializeToString()
    data += b"\x12" + bytes([len(unknown)]) + unknown  # an unknown length-delimited field 2
    assert _ours(data) == _runtime(data)


@given(st.binary(max_size=40))
@example(b"\xc5\x80\x80\x80\x10\x00\x00\x00\x00")  # found in CI: a key past 32 bits
def test_arbitrary_bytes_read_as_the_runtime_reads_them_or_refused(data: bytes) -> None:
    ours = _ours(data)
    if ours is not None:  # never a different answer; a refusal is retried, never acknowledged
        assert ours == _runtime(data)


def _varint(n: int, size: int = 0) -> bytes:
    """``n`` as a varint, padded with continuation bytes to ``size`` bytes if that is longer."""
    out = bytearray()
    while True:
        out.append(n & 0x7F)
        n >>= 7
        if not n and len(out) >= size:
            break
    return bytes(b | 0x80 for b in out[:-1]) + out[-1:]


_FIELD = st.tuples(
    st.sampled_from([1, 2, 3, 15, 16, (1 << 29) - 1, 1 << 29, (1 << 32) - 1]),  # field number
    st.sampled_from([0, 1, 2, 5]), st.integers(1, 7),  # wire type, key varint size
    st.integers(0, (1 << 64) - 1), st.integers(1, 11),  # varint value and its size
    st.binary(max_size=6), st.integers(1, 7),  # length-delimited body, length varint size
)


@given(st.lists(_FIELD, max_size=4), st.booleans())
def test_keys_lengths_and_values_at_their_limits_read_as_the_runtime_reads_them(
        fields: list[tuple[int, int, int, int, int, bytes, int]], nest: bool) -> None:
    """Varints padded past the runtime's limits (keys and lengths: 5 bytes; values: 10), field
    numbers at and past the largest (2**29 - 1): what the runtime refuses is refused, and what
    both accept reads the same. ``nest`` puts the fields inside ``partial_success``."""
    data = b""
    for number, kind, key_size, value, value_size, body, length_size in fields:
        data += _varint(number << 3 | kind, key_size)
        if kind == 0:
            data += _varint(value, value_size)
        elif kind == 2:
            data += _varint(len(body), length_size) + body
        else:
            data += (value & ((1 << (64 if kind == 1 else 32)) - 1)).to_bytes(
                8 if kind == 1 else 4, "little")
    if nest:
        data = b"\x0a" + _varint(len(data)) + data
    ours = _ours(data)
    if ours is not None:
        assert ours == _runtime(data)


@pytest.mark.parametrize(("data", "accepted"), [
    (_varint(3 << 3, 5) + b"\x00", True),  # a key in 5 bytes
    (_varint(3 << 3, 6) + b"\x00", False),  # a key in 6
    (_varint(((1 << 29) - 1) << 3) + b"\x00", True),  # the largest field number
    (_varint(1 << 32 | 3 << 3) + b"\x00", False),  # a key past 32 bits
    (b"\x0a" + _varint(0, 5), True),  # a length in 5 bytes
    (b"\x0a" + _varint(0, 6), False),  # a length in 6
    (b"\x0a\x0b\x08" + _varint(5, 10), True),  # a value in 10 bytes
    (b"\x0a\x0c\x08" + _varint(5, 11), False),  # a value in 11
])
def test_varint_limits_are_the_runtimes(data: bytes, accepted: bool) -> None:
    runtime, ours = _runtime(data), _ours(data)
    assert (runtime is not None) == accepted
    assert (ours is not None) == accepted
    assert ours == runtime


def test_a_rejection_is_read_from_the_wire() -> None:
    ack = ExportLogsServiceResponse()
    ack.partial_success.rejected_log_records = 3
    ack.partial_success.error_message = "bad chain"
    assert read_export_response(ack.SerializeToString()) == (3, "bad chain")
    assert read_export_response(b"") == (0, "")


def test_the_user_agent_version_is_the_installed_one() -> None:
    assert corral.__version__ == version("corral")
