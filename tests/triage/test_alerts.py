"""Alert parsing: corral's simple form, OCSF 2004/1007 and Falco JSON read into one Alert;
malformed alerts are refused with one line naming the field; hostile input never crashes."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from corral.triage.alerts import AlertError, load_alert, parse_alert, parse_time

T = "2026-12-01T22:52:15.123456789Z"
T_NS = 1796165535123456789


def test_simple_form_full() -> None:
    a = parse_alert({
        "id": "a1", "time": T, "host": "dev", "user": "ana", "title": "curl to new domain",
        "severity": "high",
        "process": {"pid": 10, "ppid": 9, "executable": "/usr/bin/curl",
                    "command_line": "curl https://x.example", "env": {"A": "1"},
                    "parent": {"pid": 9, "env": {"CORRAL_SESSION_ID": "s1"}}},
        "file": {"path": "/etc/passwd", "action": "read"},
        "network": {"host": "x.example", "ip": "203.0.113.1", "port": 443, "protocol": "tcp"}})
    assert a.form == "corral" and a.time_unix_nano == T_NS and a.host == "dev"
    assert a.process and a.process.parent and a.process.parent.env["CORRAL_SESSION_ID"] == "s1"
    assert a.file and a.file.path == "/etc/passwd"
    assert a.network and a.network.port == 443


def test_ocsf_detection_finding_evidences() -> None:
    a = parse_alert({
        "class_uid": 2004, "time": 1796165535123, "severity_id": 4,
        "finding_info": {"uid": "f-1", "title": "credential read"},
        "device": {"hostname": "dev"}, "actor": {"user": {"name": "ana"}},
        "evidences": [{"process": {"pid": 5, "cmd_line": "cat ~/.aws/credentials",
                                   "environment_variables": [
                                       {"name": "CORRAL_CALL_ID", "value": "call-2"}],
                                   "parent_process": {"pid": 4}},
                       "file": {"path": "/home/ana/.aws/credentials"}},
                      {"dst_endpoint": {"hostname": "evil.example", "port": 443},
                       "connection_info": {"protocol_name": "tcp"}}]})
    assert a.form == "ocsf" and a.id == "f-1" and a.time_unix_nano == 1796165535123000000
    assert a.process and a.process.env == {"CORRAL_CALL_ID": "call-2"} and a.process.ppid == 4
    assert a.file and a.file.path.endswith(".aws/credentials")
    assert a.network and a.network.host == "evil.example" and a.network.protocol == "tcp"
    assert a.user == "ana" and a.host == "dev"


def test_ocsf_process_activity() -> None:
    a = parse_alert({"class_uid": 1007, "activity_id": 1, "time": 1796165535123,
                     "device": {"hostname": "dev"},
                     "process": {"pid": 7, "cmd_line": "ls", "file": {"path": "/bin/ls"},
                                 "user": {"name": "bo"}}})
    assert a.process and a.process.executable == "/bin/ls" and a.user == "bo"


def test_falco_output() -> None:
    a = parse_alert({
        "uuid": "u-1", "rule": "Read sensitive file untrusted", "priority": "Warning",
        "time": T, "hostname": "dev", "source": "syscall", "output": "...",
        "output_fields": {"proc.pid": 12, "proc.ppid": 11, "proc.cmdline": "cat /etc/shadow",
                          "proc.exepath": "/usr/bin/cat", "user.name": "root",
                          "fd.name": "/etc/shadow", "evt.type": "openat",
                          "proc.env": "CORRAL_SESSION_ID=s9 TRACEPARENT=x",
                          "proc.pcmdline": "sh -c cat /etc/shadow"}})
    assert a.form == "falco" and a.id == "u-1" and a.time_unix_nano == T_NS
    assert a.process and a.process.env["CORRAL_SESSION_ID"] == "s9"
    assert a.process.parent and a.process.parent.command_line == "sh -c cat /etc/shadow"
    assert a.file and a.file.path == "/etc/shadow" and a.file.action == "openat"
    net = parse_alert({"rule": "Outbound", "priority": "Notice", "output_fields": {
        "fd.type": "ipv4", "fd.sip": "203.0.113.5", "fd.sport": 443, "fd.l4proto": "tcp",
        "evt.time": T_NS}})
    assert net.network and net.network.ip == "203.0.113.5" and net.network.port == 443
    assert net.time_unix_nano == T_NS


@pytest.mark.parametrize("doc,field", [
    ({"process": {"pid": "x"}}, "process.pid"),
    ({"process": {"pid": -1}}, "process.pid"),
    ({"time": "yesterday", "process": {"pid": 1}}, "time"),
    ({"file": {"action": "read"}}, "file.path"),
    ({"network": {"port": 99999, "host": "a"}}, "network.port"),
    ({"network": {"port": 1}}, "network"),
    ({"process": {"env": 5}}, "process.env"),
    ({"procss": {}}, "procss"),
    ({"title": "x"}, "(document)"),
    ({"class_uid": 3002}, "class_uid"),
    ({"class_uid": 2004}, "finding_info"),
    ({"class_uid": 2004, "finding_info": {}, "evidences": {}}, "evidences"),
    ({"rule": "r", "priority": "p"}, "output_fields"),
    ({"rule": "r", "output_fields": {"proc.pid": True}}, "output_fields.proc.pid"),
    ({"process": {"command_line": "a\x00b"}}, "process.command_line"),
    ({"time": "\u00b2", "process": {"pid": 1}}, "time"),  # isdigit() but not int(): crashed
    ({"process": {"pid": "\u00b2"}}, "process.pid"),
])
def test_malformed_names_the_field(doc: dict, field: str) -> None:
    with pytest.raises(AlertError) as info:
        parse_alert(doc)
    assert info.value.field == field
    line = info.value.line()
    assert line.startswith(f"corral: triage: alert: {field}: ") and "\n" not in line


def test_not_json_and_not_object() -> None:
    for text in ("{", "[1, 2]", "null", "x" * 10):
        with pytest.raises(AlertError):
            load_alert(text)


def test_time_forms() -> None:
    assert parse_time(1796165535, "t") == 1796165535 * 10**9
    assert parse_time(1796165535123, "t") == 1796165535123 * 10**6
    assert parse_time(T_NS, "t") == T_NS
    assert parse_time("2026-12-01T23:52:15+01:00", "t") == 1796165535 * 10**9
    assert parse_time(str(T_NS), "t") == T_NS


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=30),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "time", "host", "process", "pid", "ppid", "env", "parent",
                         "file", "path", "network", "port", "class_uid", "finding_info",
                         "evidences", "output_fields", "proc.pid", "proc.env", "rule",
                         "priority", "cmd_line", "parent_process", "environment_variables",
                         "dst_endpoint", "fd.sip", "fd.sport", "device", "actor", "user"]),
        kids, max_size=6),
    max_leaves=25)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_json)
def test_fuzz_only_alert_errors(doc: object) -> None:
    """Whatever the JSON, parsing gives an Alert or an AlertError: never a crash."""
    try:
        parse_alert(doc)
    except AlertError as exc:
        assert exc.line().startswith("corral: triage: alert: ")
    for hint in ({"class_uid": 2004, "finding_info": doc, "evidences": [doc]},
                 {"rule": "r", "output_fields": doc}, {"process": doc}):
        with contextlib.suppress(AlertError):
            parse_alert(hint)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
@example("²")  # non-ASCII digits crashed the time and pid parsers (found by this test)
@example("١٢٣")
def test_fuzz_text(text: str) -> None:
    with contextlib.suppress(AlertError):
        load_alert(text)
    with contextlib.suppress(AlertError):
        load_alert(json.dumps({"time": text, "process": {"pid": 1}}))
