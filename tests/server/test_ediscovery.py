"""eDiscovery bundles: `corral server export` of one user's events, `corral server
verify-bundle` offline, and the tampering it catches."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import httpx

from tests.server.compliance_helpers import auth, mixed_journal, read_token, server_with, start
from tests.server.helpers import corral, forward_request, post, token


def _rehash(d: Path) -> None:
    """What a forger does next: make the manifest agree with the edited files."""
    m = json.loads((d / "manifest.json").read_text())
    for f in m["files"]:
        m["files"][f] = hashlib.sha256((d / f).read_bytes()).hexdigest()
    (d / "manifest.json").write_text(json.dumps(m))


def test_export_verify_and_tampering(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    server_with(data)
    ing = token(data, "ingest")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = mixed_journal(tmp_path / "a", 40, session="sa", user="alice")
    b = mixed_journal(tmp_path / "b", 10, session="sb", user="bob")
    srv = start(data)
    try:
        assert post(srv.url, forward_request(a), ing).status_code == 200
        assert post(srv.url, forward_request(b), ing).status_code == 200
        out = tmp_path / "bundle"
        # event i has time T0 + i*1000: since/until keep events 10..29
        r = corral("server", "export", "--data", str(data), "--user", "alice", "--out",
                   str(out), "--since", "1700000000000010000", "--until",
                   "1700000000000030000")
        assert "exported 20 events of alice" in r.stdout
        bob = tmp_path / "bob"
        corral("server", "export", "--data", str(data), "--user", "bob", "--out", str(bob))
        # the same through the API: a content token gets the files, writes them, verifies
        full, meta = read_token(data, "--content"), read_token(data, name="meta")
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            r = c.get("/v1/ediscovery/bundle", params={"user": "alice"}, headers=auth(full))
            assert r.status_code == 200, r.text
            api = tmp_path / "api"
            api.mkdir()
            for name, text in r.json()["files"].items():
                (api / name).write_text(text)
            assert c.get("/v1/ediscovery/bundle", params={"user": "alice"},
                         headers=auth(meta)).status_code == 403
            r = c.get("/v1/ediscovery/bundle", headers=auth(full))
            assert r.status_code == 400 and "user is required" in r.text
        ok = corral("server", "verify-bundle", str(api))
        assert ok.stdout.startswith("ok: 40 events of alice")
    finally:
        srv.stop()
    m = json.loads((out / "manifest.json").read_text())
    assert m["count"] == 20 and m["user"] == "alice" and m["tree_size"] >= 50
    ids = [json.loads(x)["id"] for x in (out / "events.jsonl").read_text().splitlines()]
    assert ids == [f"ev-sa-{i:08d}" for i in range(10, 30)]
    vkey = (data / "keys" / "server.vkey").read_text().strip()
    ok = corral("server", "verify-bundle", str(out), "--key", vkey)
    assert ok.stdout.startswith("ok: 20 events of alice, every one in ")
    assert corral("server", "export", "--data", str(data), "--user", "alice", "--out",
                  str(out), check=False).returncode != 0  # never over an existing bundle

    def broken(name: str) -> Path:
        d = tmp_path / name
        shutil.copytree(out, d)
        return d

    # 1. an edited event, manifest left alone
    d = broken("edited")
    ev = (d / "events.jsonl").read_text().replace("ls 12", "ls 99")
    (d / "events.jsonl").write_text(ev)
    r = corral("server", "verify-bundle", str(d), check=False)
    assert r.returncode == 1
    assert "corral: server verify-bundle: events.jsonl: sha256" in r.stdout
    # 2. the same, manifest rehashed: the proof no longer leads to the signed root
    _rehash(d)
    r = corral("server", "verify-bundle", str(d), check=False)
    assert r.returncode == 1 and "is NOT in the log at tree size" in r.stdout
    # 3. a bundle signed by some other key than the one the recipient trusts
    other = tmp_path / "other"
    server_with(other)
    r = corral("server", "verify-bundle", str(out), "--key",
               str(other / "keys" / "server.vkey"), check=False)
    assert r.returncode == 1 and "not the key you trust" in r.stdout
    # 4. someone else's (genuinely logged) event slipped in
    d = broken("mixed")
    bob_ev = (bob / "events.jsonl").read_bytes().splitlines()[0]
    bob_pf = (bob / "proofs.jsonl").read_text().splitlines()[0]
    with open(d / "events.jsonl", "ab") as fh:
        fh.write(bob_ev + b"\n")
    with open(d / "proofs.jsonl", "a") as fh:
        fh.write(bob_pf + "\n")
    m = json.loads((d / "manifest.json").read_text())
    doc = json.loads(bob_ev)
    m["events"].append({"seq": doc["seq"], "id": doc["id"],
                        "leaf_hash": hashlib.sha256(b"\0" + bob_ev).hexdigest()})
    m["count"] += 1
    (d / "manifest.json").write_text(json.dumps(m))
    _rehash(d)
    assert json.loads((bob / "manifest.json").read_text())["tree_size"] == m["tree_size"]
    r = corral("server", "verify-bundle", str(d), check=False)
    assert r.returncode == 1 and "not an event of user alice" in r.stdout
    # 5. a dropped file
    d = broken("missing")
    (d / "proofs.jsonl").unlink()
    r = corral("server", "verify-bundle", str(d), check=False)
    assert r.returncode == 1 and "proofs.jsonl" in r.stdout
