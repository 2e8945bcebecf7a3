"""The fleet store (enrolment tokens, devices, status, policy versions) on both of the server's
engines: SQLite and PostgreSQL 15 (the session's cluster from tests/server/conftest.py)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from corral.server.fleetdb import Device, FleetRefused, FleetStore


def _exercise(store: FleetStore) -> None:
    tid, secret = store.create_enrol_token(["eng"], uses=1)
    assert store.use_enrol_token(secret) == (tid, ["eng"])
    with pytest.raises(FleetRefused, match="used up"):
        store.use_enrol_token(secret)
    with pytest.raises(FleetRefused, match="unknown"):
        store.use_enrol_token("corral_enrol_nope")
    with pytest.raises(ValueError):
        store.create_enrol_token(["a b"])
    dev = Device("dev-1", "pk", "box", ("eng",), "http://x", "tok1", time.time_ns())
    store.add_device(dev, "digest1", tid)
    assert store.device_by_token("digest1") == dev
    store.seen("dev-1", policy_applied=3, newest_event_ns=5)
    store.seen("dev-1", newest_event_ns=4, report={"agents": {"codex": "1"}})
    st = store.status("dev-1")
    assert (st.policy_applied, st.newest_event_ns, st.report) == (3, 5, {"agents": {"codex": "1"}})
    p1 = store.add_policy("*", "a = 1\n", "admin@h")
    p2 = store.add_policy("eng", "b = 2\n", "admin@h")
    p3 = store.add_policy("*", "", "admin@h")
    assert (p1.version, p2.version, p3.version) == (1, 2, 3)
    cur = store.current_policies()
    assert cur["*"].body == "" and cur["eng"].version == 2
    store.revoke_device("dev-1")
    assert store.device("dev-1").revoked_ns is not None  # type: ignore[union-attr]


def test_fleet_store_sqlite(tmp_path: Path) -> None:
    store = FleetStore("sqlite", tmp_path / "fleet.db")
    try:
        _exercise(store)
    finally:
        store.close()


@pytest.mark.slow
def test_fleet_store_postgresql(pg_url: str) -> None:
    store = FleetStore(pg_url)
    try:
        _exercise(store)
    finally:
        store.close()
