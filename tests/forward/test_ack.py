"""The forwarder reads the server's OTLP acknowledgement by hand: checked against the protobuf
runtime on generated and on arbitrary bytes."""

from __future__ import annotations

from importlib.metadata import version

from hypothesis import given
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
def test_arbitrary_bytes_read_as_the_runtime_reads_them_or_refused(data: bytes) -> None:
    ours = _ours(data)
    if ours is not None:  # never a different answer; a refusal is retried, never acknowledged
        assert ours == _runtime(data)


def test_a_rejection_is_read_from_the_wire() -> None:
    ack = ExportLogsServiceResponse()
    ack.partial_success.rejected_log_records = 3
    ack.partial_success.error_message = "bad chain"
    assert read_export_response(ack.SerializeToString()) == (3, "bad chain")
    assert read_export_response(b"") == (0, "")


def test_the_user_agent_version_is_the_installed_one() -> None:
    assert corral.__version__ == version("corral")
