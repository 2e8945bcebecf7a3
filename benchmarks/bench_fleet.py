"""What a managed fleet costs a machine's `corral exec`, and what policy fetches cost the server.

Cases, each a fresh `corral exec -- true` process (median of --runs):
  * not enrolled (the floor);
  * enrolled, policy cache fresh (reads the enrolment record and the cached signed bundle);
  * enrolled, policy due (refresh_seconds = 0: fetches and verifies the bundle every start);
  * enrolled, forced login (the stored ID token verified again at each start);
  * not enrolled, forwarding over https to a server whose certificate the system trust store
    vouches for (SSL_CERT_FILE: Debian's bundle plus a local test CA, so the whole store is
    loaded as for a public CA).
And the server's `GET /v1/fleet/policy` (compose + sign per device) per second from one client.

Cases run interleaved (one run of each per round). ``--compare-src DIR`` adds the first two
cases run from another source tree (``git archive REV src | tar -x -C DIR``).

Usage: .venv/bin/python benchmarks/bench_fleet.py [--runs 15] [--compare-src DIR/src]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from common import machine

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


ENTRY = "import sys; from corral.cli.entry import main; sys.argv[0]='corral'; sys.exit(main())"


def interleaved(cases: dict[str, tuple[list[str], dict[str, str]]], cwd: Path,
                runs: int) -> dict[str, list[float]]:
    """Wall ms of each case, one run of every case per round (load hits all alike)."""
    for argv, env in cases.values():
        subprocess.run(argv, env=env, cwd=cwd, capture_output=True, check=True)
    out: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, (argv, env) in cases.items():
            t0 = time.perf_counter()
            r = subprocess.run(argv, env=env, cwd=cwd, capture_output=True)
            out[name].append((time.perf_counter() - t0) * 1000)
            if r.returncode:
                raise SystemExit(f"{argv}: {r.stderr.decode()}")
    return out


def main() -> None:
    import httpx
    from tests.fleet.issuer import Issuer
    from tests.server.helpers import ServerProc, init_server

    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--compare-src", type=Path, default=None,
                    help="also run the not-enrolled and forwarding cases from this src tree")
    args = ap.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        iss = Issuer().start()
        iss.add_user("alice", email="alice@acme.example", org_id="acme")
        data = t / "srv"
        init_server(data)
        (data / "fleet.toml").write_text(
            f'refresh_seconds = 3600\n[oidc]\nissuer = "{iss.url}"\nclient_id = "corral-cli"\n')
        srv = ServerProc(data)
        work = t / "work"
        work.mkdir()
        base = {k: v for k, v in os.environ.items() if k != "CORRAL_SERVER_TOKEN"}
        base["CORRAL_SYSTEM_DIR"] = str(t / "etc")
        tls_srv = None
        try:
            def corral(home: Path, *a: str, stdin: str | None = None) -> str:
                r = subprocess.run([PY, "-m", "corral", *a], env={**base, "CORRAL_HOME":
                                   str(home)}, cwd=work, input=stdin, capture_output=True,
                                   text=True, check=True)
                return r.stdout

            def home(name: str) -> Path:
                h = t / name
                h.mkdir()
                (h / "config.toml").write_text('[credentials]\nstore = "file"\n')
                return h

            tok = subprocess.run([PY, "-m", "corral", "server", "enroll-token", "create",
                                  "--data", str(data)], capture_output=True, text=True,
                                 check=True).stdout.strip()
            plain, fresh, due, forced = home("plain"), home("fresh"), home("due"), home("forced")
            fwd_only = home("forwarding")
            fwd_token = subprocess.run([PY, "-m", "corral", "server", "token", "create",
                                        "--data", str(data), "--scope", "ingest"],
                                       capture_output=True, text=True, check=True).stdout.strip()
            (fwd_only / "config.toml").write_text(
                f'[server]\nurl = "{srv.url}"\n[credentials]\nstore = "file"\n')
            corral(fwd_only, "login", "--ingest-token", "--server", srv.url,
                   stdin=fwd_token + "\n")
            for h in (fresh, due, forced):
                corral(h, "enroll", "--server", srv.url, stdin=tok + "\n")
            tls_home, tls_env, tls_srv = _https_server(t, data, base, fwd_token, home)
            enr = due / "fleet" / "enrolment.json"
            doc = json.loads(enr.read_text())
            doc["refresh_seconds"] = 0
            enr.write_text(json.dumps(doc))
            pol = t / "login.toml"
            pol.write_text('[login]\nforced_method = "oidc"\nforced_workspace_id = "acme"\n')
            dev = json.loads((forced / "fleet" / "enrolment.json").read_text())["device_id"]
            subprocess.run([PY, "-m", "corral", "server", "policy", "set", str(pol), "--group",
                            f"device:{dev}", "--data", str(data)], check=True,
                           capture_output=True)
            (forced / "state" / "fleet-policy-bundle.json").unlink()
            p = subprocess.Popen([PY, "-m", "corral", "login"], env={**base, "CORRAL_HOME":
                                 str(forced)}, cwd=work, stdout=subprocess.PIPE, text=True)
            assert p.stdout is not None
            code = p.stdout.readline().split()[-1]
            httpx.post(iss.url + "/activate", data={"user_code": code, "username": "alice"})
            p.communicate(timeout=60)
            print(f"{'corral exec -- true':<44} {'median ms':>9} {'min':>7} {'max':>7}")
            cases: dict[str, tuple[list[str], dict[str, str]]] = {}

            def case(name: str, env: dict[str, str], h: Path, compare: bool) -> None:
                """``corral exec -- true`` as the `corral` command starts it (`-m corral` adds
                runpy's imports); with ``compare``, also from the ``--compare-src`` tree."""
                trees = [(name, ROOT / "src")]
                if compare and args.compare_src is not None:
                    trees.append((f"{name} ({args.compare_src})", args.compare_src))
                for label, src in trees:
                    cases[label] = ([PY, "-c", ENTRY, "exec", "--", "true"],
                                    {**env, "CORRAL_HOME": str(h), "PYTHONPATH": str(src)})

            for name, h in (("not enrolled", plain),
                            ("not enrolled, forwarding to the server", fwd_only),
                            ("enrolled, policy cache fresh", fresh),
                            ("enrolled, policy fetched every start", due),
                            ("enrolled, forced login verified", forced)):
                case(name, base, h, compare=h in (plain, fwd_only))
            case("not enrolled, forwarding over https", tls_env, tls_home, compare=True)
            for name, ms in interleaved(cases, work, args.runs).items():
                print(f"{name:<44} {statistics.median(ms):>9.1f} {min(ms):>7.1f} "
                      f"{max(ms):>7.1f}")
            token = json.loads((fresh / "credentials" / "server-tokens.json").read_text())[
                srv.url]
            n, t0 = 0, time.perf_counter()
            with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as c:
                while time.perf_counter() - t0 < 3:
                    assert c.get(srv.url + "/v1/fleet/policy").status_code == 200
                    n += 1
            print(f"server: GET /v1/fleet/policy (compose + sign) {n / 3:.0f}/s from one client")
        finally:
            srv.stop()
            iss.close()
            if tls_srv is not None:
                tls_srv.stop()


def _https_server(t: Path, data: Path, base: dict[str, str], token: str,
                  home: Any) -> tuple[Path, dict[str, str], Any]:
    """The same server's data served over https (a second process), and a home forwarding to
    it with no ca_file: its certificate is trusted through the system store, which
    SSL_CERT_FILE (the system bundle plus the test CA) makes the one loaded."""
    import ssl

    import trustme
    from tests.server.helpers import ServerProc

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(t / "tls-cert.pem"))
    cert.private_key_pem.write_to_path(str(t / "tls-key.pem"))
    bundle = t / "bundle.pem"
    system = ssl.get_default_verify_paths().openssl_cafile
    bundle.write_bytes(Path(system).read_bytes() + ca.cert_pem.bytes())
    srv = ServerProc(data, tls=(t / "tls-cert.pem", t / "tls-key.pem"),
                     verify=ssl.create_default_context(cafile=str(bundle)))
    url = srv.url
    env = {**base, "SSL_CERT_FILE": str(bundle)}
    h: Path = home("forwarding-https")
    (h / "config.toml").write_text(f'[server]\nurl = "{url}"\n[credentials]\nstore = "file"\n')
    subprocess.run([PY, "-m", "corral", "login", "--ingest-token", "--server", url],
                   env={**env, "CORRAL_HOME": str(h)}, input=token + "\n", text=True,
                   check=True, capture_output=True)
    return h, env, srv


if __name__ == "__main__":
    main()
