"""The stamping contract: CORRAL_SESSION_ID, CORRAL_CALL_ID and TRACEPARENT for processes."""

from __future__ import annotations

import subprocess
from pathlib import Path

from corral.telemetry import Telemetry
from corral.telemetry.stamp import parse_traceparent, span_id, trace_id, traceparent


def test_traceparent_is_valid_w3c_and_derived_from_ids() -> None:
    tp = traceparent("sess-1", "call-9")
    parsed = parse_traceparent(tp)
    assert parsed == (trace_id("sess-1").hex(), span_id("call-9").hex())
    assert tp.startswith("00-") and tp.endswith("-01")
    assert traceparent("sess-1", "call-8") != tp
    assert parse_traceparent("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None
    assert parse_traceparent("garbage") is None


def test_stamped_process_sees_the_variables(home: Path) -> None:
    tel = Telemetry.open(None, "sess-stamp")
    env = {"PATH": "/usr/bin:/bin", **tel.stamp_env("call-42")}
    tel.close()
    out = subprocess.run(["sh", "-c", 'echo "$CORRAL_SESSION_ID $CORRAL_CALL_ID $TRACEPARENT"'],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    assert out == ["sess-stamp", "call-42", traceparent("sess-stamp", "call-42")]
