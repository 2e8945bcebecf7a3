"""Network, exfiltration, publishing/deployment and git checks for one simple command, and the
script-wide exfiltration judgement (secrets read + network reached = sending the secrets)."""

from __future__ import annotations

import re
from collections.abc import Callable

from corral.review import hosts, scan_pub
from corral.review.findings import Cmd, Scan
from corral.review.places import Place
from corral.review.scan_pub import FROM_URL, publish

_REMOTE = re.compile(r"^(?:[^@/\s:]+@)?([A-Za-z0-9][A-Za-z0-9.-]*):(.*)$")
_CURL_VALUE = frozenset({
    "-d", "--data", "--data-binary", "--data-raw", "--data-ascii", "--data-urlencode", "--json",
    "-F", "--form", "--form-string", "-T", "--upload-file", "-H", "--header", "-o", "--output",
    "-X", "--request", "-u", "--user", "-A", "--user-agent", "-e", "--referer", "-b", "--cookie",
    "-c", "--cookie-jar", "-x", "--proxy", "-K", "--config", "--cacert", "--cert", "--key",
    "-m", "--max-time", "--connect-timeout", "--retry", "-w", "--write-out", "-r", "--range",
    "-E", "-U", "--proxy-user", "--resolve", "--connect-to", "-y", "-Y", "-z", "--limit-rate",
    "--url", "-Q", "--trace", "--trace-ascii", "-D", "--dump-header", "--unix-socket", "-C",
    "--retry-delay", "--retry-max-time", "--oauth2-bearer", "--variable", "--expand-data",
    "-O", "--output-document", "--post-data", "--post-file", "--body-data", "--body-file",
    "--method", "-P", "--directory-prefix", "-t", "--tries", "--timeout",
    "--password", "--http-user", "--http-password",
})
_DATA = ("-d", "--data", "--data-binary", "--data-raw", "--data-ascii", "--data-urlencode",
         "--json", "--post-data", "--body-data")
_FILE_DATA = ("-T", "--upload-file", "--post-file", "--body-file")
_FORM = ("-F", "--form", "--form-string")
_PROTECTED = frozenset({"main", "master", "production", "prod", "release", "trunk", "stable",
                        "live", "gh-pages"})


def _host(url: str) -> tuple[str, str]:
    h = hosts.host_of(url)
    if h is None:
        return "?", "other"
    return h, hosts.kind(h, hosts.path_of(url))


def _split_opts(cmd: Cmd) -> tuple[list[tuple[str, str]], list[tuple[str, bool]]]:
    """(option, value) pairs and operands, for curl/wget-style option tables."""
    opts: list[tuple[str, str]] = []
    ops: list[tuple[str, bool]] = []
    args = cmd.args
    i = 0
    while i < len(args):
        t = args[i]
        if t.startswith("--") and "=" in t:
            k, v = t.split("=", 1)
            opts.append((k, v))
        elif t in _CURL_VALUE and i + 1 < len(args):
            opts.append((t, args[i + 1]))
            i += 1
        elif t.startswith("-") and len(t) > 1 and not t.startswith("--") and t[-1] in "dFTHoXuxwe" \
                and "-" + t[-1] in _CURL_VALUE and i + 1 < len(args):
            opts.extend((f"-{c}", "") for c in t[1:-1])
            opts.append(("-" + t[-1], args[i + 1]))
            i += 1
        elif t.startswith("-") and len(t) > 1:
            if t.startswith("--"):
                opts.append((t, ""))
            else:
                opts.extend((f"-{c}", "") for c in t[1:])
        else:
            ops.append((t, cmd.known_args[i] if i < len(cmd.known_args) else False))
        i += 1
    return opts, ops


def _upload_risk(kind: str) -> str | None:
    return {"local": None, "dev": "medium", "private": "medium"}.get(kind, "high")


def _http(cmd: Cmd, place: Place, scan: Scan) -> None:
    opts, ops = _split_opts(cmd)
    urls = [v for k, v in opts if k == "--url"] + [t for t, _ in ops]
    if cmd.name in ("http", "https", "xh"):
        urls = [t for t, _ in ops if hosts.host_of(t) or t.startswith((":", "localhost"))][:1]
    urls = [u for u in urls if hosts.host_of(u) or "$" in u or u.startswith("`")] or urls[:1]
    uploads: list[str] = []
    inline = False
    method = ""
    for k, v in opts:
        if k in _DATA:
            if v.startswith("@"):
                uploads.append(v[1:])
            elif "@" in v and k == "--data-urlencode":
                uploads.append(v.split("@", 1)[1])
            else:
                inline = True
        elif k in _FILE_DATA:
            uploads.append(v)
        elif k in _FORM:
            m = re.search(r"=[@<](.+)$", v)
            if m:
                uploads.append(m.group(1).split(";")[0])
            else:
                inline = True
        elif k in ("-X", "--request", "--method"):
            method = v.upper()
        elif k in ("-k", "--insecure", "--no-check-certificate"):
            scan.add("security", "medium", f"skips TLS certificate checks ({cmd.name} {k})",
                     ("insecure", "certificate", "tls", "ssl"), ())
    if cmd.name in ("http", "https", "xh"):
        for t, _ in ops[1:]:
            if re.match(r"^[\w.-]+@", t) or re.match(r"^[\w.-]+=@", t):
                uploads.append(t.split("@", 1)[1])
            elif re.match(r"^[\w.-]+:?=", t):
                inline = True
        if ops and ops[0][0].isupper():
            method = ops[0][0]
    for url in urls or ["?"]:
        host, kind = _host(url)
        scan.senders.append((host, kind))
        if kind == "metadata":
            scan.add("credentials", "critical", f"reads cloud instance credentials from the "
                     f"metadata service ({host})")
            scan.secrets.append(f"instance credentials from {host}")
            scan.env_secret_only = False
            continue
        for up in uploads:
            what = "data from a pipe" if up in ("-", "") else place.show(
                place.resolve(up) or up)
            scan.uploads.append((what, host, kind))
            risk = _upload_risk(kind)
            if risk is not None:
                site = " (a public paste/file-drop site)" if kind == "drop" else ""
                scan.add("exfiltration", risk, f"uploads {what} to {host}{site}",
                         ("upload", "send", "post", "share", "submit"), (host, what))
        if uploads:
            continue
        if method == "DELETE" and kind != "local":
            scan.add("destructive", "high", f"sends an HTTP DELETE to {host} (deletes remote "
                     "data)", ("delete", "remove"), (host, hosts.path_of(url)))
            continue
        if inline or method in ("POST", "PUT", "PATCH"):
            if kind == "drop":
                scan.add("exfiltration", "high", f"posts data to {host} (a public paste/"
                         "file-drop site)", ("post", "paste", "share", "send"), (host,))
            elif kind in ("other", "ip", "private"):
                scan.add("exfiltration", "medium", f"sends a {method or 'POST'} request with "
                         f"data to {host}", ("post", "send", "call", "request", "submit"),
                         (host,))
            continue
        scan.fetches.append(host)
        _record_download(cmd, opts, url, host, place, scan)
        if kind == "ip":
            scan.add("scope", "medium", f"downloads from the raw IP address {host}",
                     ("download", "fetch"), (host,))
        elif kind == "private":
            scan.add("scope", "medium", f"reaches the private-network host {host}",
                     ("fetch", "call", "check"), (host,))
        elif kind == "drop":
            scan.add("scope", "medium", f"fetches content from {host} (a paste/file-drop site)",
                     ("download", "fetch"), (host,))


def _record_download(cmd: Cmd, opts: list[tuple[str, str]], url: str, host: str, place: Place,
                     scan: Scan) -> None:
    """Remember where a downloaded file lands, in case the same script then runs it."""
    saved = next((v for k, v in opts if k in ("-o", "--output", "-O", "--output-document")
                  and v and v != "-"), None)
    if saved is None and (cmd.name == "wget" or any(
            k in ("-O", "--remote-name") and not v for k, v in opts)):
        saved = hosts.path_of(url).rsplit("/", 1)[-1] or None
    p = place.resolve(saved) if saved else None
    if p:
        scan.downloads[p] = host


def _raw_socket(cmd: Cmd, place: Place, scan: Scan) -> None:
    short, long = cmd.options()
    shell = bool(short & {"e", "c"}) or "--exec" in long or "--sh-exec" in long
    ops = [t for t, _ in cmd.operands("epwsqiIOTxXcg", ("--exec", "--sh-exec", "--wait",
                                                        "--source"))]
    if cmd.name == "socat":
        shell = any(re.match(r"(?i)(exec|system):", t) for t in cmd.args)
        listen = any(re.match(r"(?i)(tcp|tcp4|tcp6|udp|openssl)-listen", t) for t in cmd.args)
        target = next((t for t in cmd.args if re.match(r"(?i)(tcp[46]?|udp[46]?|openssl):", t)),
                      "")
        host = target.split(":")[1] if target.count(":") >= 1 else "?"
    else:
        listen = "l" in short or "--listen" in long
        host = ops[0] if ops else "?"
    kind = hosts.kind(host) if host != "?" else "other"
    if listen:
        if shell:
            scan.add("security", "critical", f"serves a shell on a network port ({cmd.name} "
                     "bind shell)")
        else:
            scan.add("scope", "medium", f"listens for network connections ({cmd.name} -l)",
                     ("listen", "server", "port"), ())
        return
    scan.senders.append((host, kind))
    if shell:
        scan.add("exfiltration", "critical", f"connects a shell to {host} (reverse shell)")
    elif kind not in ("local",):
        scan.add("exfiltration", "high", f"opens a raw connection to {host} with {cmd.name} "
                 "(an exfiltration or reverse-shell channel)", ("connect", "netcat", "nc"),
                 (host,))


def _copy_remote(cmd: Cmd, place: Place, scan: Scan) -> None:
    ops = [t for t, _ in cmd.operands("cFiJloPSeBDX" if cmd.name != "rsync" else "efTBy",
                                       ("--rsh", "--exclude", "--include", "--rsync-path",
                                        "--filter", "--port"))]
    if cmd.name == "sftp":
        host = ops[0] if ops else "?"
        h = _REMOTE.match(host)
        hn = h.group(1) if h else host.split("@")[-1]
        scan.senders.append((hn, hosts.kind(hn)))
        scan.add("exfiltration", "medium", f"opens a file transfer session with {hn}",
                 ("sftp", "transfer", "upload", "download"), (hn,))
        return
    if len(ops) < 2:
        return
    dest = _REMOTE.match(ops[-1])
    for src in ops[:-1]:
        if _REMOTE.match(src):
            m = _REMOTE.match(src)
            assert m is not None
            scan.senders.append((m.group(1), hosts.kind(m.group(1))))
    if dest and not re.match(r"^[A-Za-z]:", ops[-1]):
        host = dest.group(1)
        kind = hosts.kind(host)
        scan.senders.append((host, kind))
        srcs = ", ".join(place.show(place.resolve(s) or s) for s in ops[:-1][:3])
        risk = _upload_risk(kind) if kind != "private" else "medium"
        scan.uploads.append((srcs, host, kind))
        if risk is not None:
            scan.add("exfiltration", risk, f"copies {srcs} to {host}",
                     ("copy", "upload", "sync", "deploy", "transfer", "scp", "rsync"), (host,))


def _ssh(cmd: Cmd, place: Place, scan: Scan) -> None:
    ops = [t for t, _ in cmd.operands("bcDEeFIiJLlmOoPpQRSWw")]
    if not ops:
        return
    host = ops[0].split("@")[-1]
    kind = hosts.kind(host)
    scan.senders.append((host, kind))
    if kind == "local":
        return
    short, _ = cmd.options()
    if "R" in short:
        scan.add("exfiltration", "high", f"opens a reverse tunnel through {host} (exposes this "
                 "machine)", ("tunnel", "forward"), (host,))
    elif ops[1:] and re.search(r"cat\s*>|\btee\b|\bdd\b.*of=|tar\s+-?x", " ".join(ops[1:])):
        scan.uploads.append(("data from a pipe", host, kind))
        scan.add("exfiltration", "medium" if kind in ("dev", "private") else "high",
                 f"sends data piped from this machine to {host} (`{' '.join(ops[1:])[:40]}`)",
                 ("copy", "upload", "backup", "send", "transfer"), (host,))
    elif ops[1:]:
        from corral.review.scan import scan_remote

        scan_remote(("sh", "-c", " ".join(ops[1:])), host, scan)
        scan.add("scope", "medium", f"runs `{' '.join(ops[1:])[:40]}` on {host}",
                 ("ssh", "run", "remote", "server"), (host,))
    else:
        scan.add("scope", "medium", f"opens a remote session on {host}", ("ssh", "connect",
                                                                          "log in"), (host,))


def _dns(cmd: Cmd, place: Place, scan: Scan) -> None:
    for t, k in cmd.operands("tcpqxfbkyWw"):
        if t.startswith("@") or t.startswith("+"):
            continue
        label = max(t.split("."), key=len) if t else ""
        if not k or "$" in t or "`" in t or "{}" in t or (len(label) >= 25 and re.fullmatch(
                r"[A-Za-z0-9+/=_-]+", label)):
            scan.senders.append((t, "other"))
            scan.add("exfiltration", "high", f"encodes data in a DNS lookup ({t[:50]}): "
                     "DNS exfiltration", (), ())
            return


def _mail(cmd: Cmd, place: Place, scan: Scan) -> None:
    rcpt = next((t for t in cmd.args if "@" in t and not t.startswith("-")), "?")
    scan.senders.append((rcpt.split("@")[-1], "other"))
    scan.add("exfiltration", "medium", f"sends email to {rcpt}", ("email", "mail", "send"),
             (rcpt,))


def _pip(cmd: Cmd, place: Place, scan: Scan) -> None:
    args = cmd.args
    if cmd.name.startswith("python"):
        if "-m" not in args:
            _inline_code(cmd, place, scan)
            return
        i = args.index("-m")
        mod = args[i + 1] if i + 1 < len(args) else ""
        rest = args[i + 2:]
        if mod == "twine" and "upload" in rest:
            publish(cmd, "uploads the package to PyPI (twine upload)", objects=("pypi",),
                     scan=scan)
            return
        if mod == "http.server":
            scan.add("scope", "medium", "serves the current directory over HTTP",
                     ("serve", "server", "http"), ())
            return
        if mod != "pip":
            return
        args = rest
    if args[:1] == ("install",) and any(FROM_URL.match(t) for t in args[1:]):
        url = next(t for t in args[1:] if FROM_URL.match(t))
        scan.add("security", "medium", f"installs a package straight from {url[:60]} (its "
                 "build scripts run)", ("install",), (url,))
    index = None
    for i, t in enumerate(args):
        if t in ("-i", "--index-url", "--extra-index-url") and i + 1 < len(args):
            index = args[i + 1]
        elif t.startswith(("--index-url=", "--extra-index-url=")):
            index = t.split("=", 1)[1]
        elif t == "--trusted-host" or t.startswith("--trusted-host="):
            scan.add("security", "medium", "trusts a package host without TLS checks "
                     "(--trusted-host)", ("trusted-host", "insecure"), ())
    if index:
        h, kind = _host(index)
        if kind not in ("dev", "local"):
            plain = index.startswith("http://")
            scan.add("security", "high" if plain or kind in ("ip", "drop") else "medium",
                     f"installs packages from the unofficial index {h}"
                     f"{' over plain HTTP' if plain else ''}", ("index", "install from"), (h,))


_CODE_CRED = re.compile(r"\.ssh/|\.aws/|\.env\b|/etc/shadow|\.kube/config|\.docker/config|"
                        r"\.netrc|\.git-credentials|\.gnupg|\.config/gcloud")
_CODE_NET = re.compile(r"requests\.(post|put|get)|urlopen|urllib|http\.client|socket\.|"
                       r"fetch\(|XMLHttpRequest|https?://|smtplib|ftplib|IO::Socket|Net::HTTP")


def _inline_code(cmd: Cmd, place: Place, scan: Scan) -> None:
    code = cmd.value("-c", "-e", "--eval", "-E", "-r") or ""
    if not code:
        return
    m = _CODE_CRED.search(code)
    if m:
        scan.add("credentials", "high", f"reads {m.group(0).strip('/')} from inline "
                 f"{cmd.name} code", ("secret", "credential", "key"), ())
        scan.secrets.append(m.group(0).strip("/"))
        scan.env_secret_only = False
    if "environ" in code or "process.env" in code or "ENV[" in code:
        scan.secrets.append("the environment")
    if _CODE_NET.search(code):
        u = re.search(r"https?://[^\s'\"]+", code)
        host, kind = _host(u.group(0)) if u else ("?", "other")
        scan.senders.append((host, kind))
    if re.search(r"socket|connect\(", code, re.I) and re.search(
            r"dup2|pty\.spawn|/bin/(ba)?sh|subprocess|child_process|exec\(", code):
        scan.add("exfiltration", "critical", f"connects a shell to a remote host from inline "
                 f"{cmd.name} code (reverse shell)")
    if re.search(r"rmtree\(\s*['\"](/|~)|rm -rf (/|~)", code):
        scan.add("destructive", "high", f"deletes files outside the workspace from inline "
                 f"{cmd.name} code", ("delete", "remove"), ())


HANDLERS: dict[str, Callable[[Cmd, Place, Scan], None]] = {
    **{n: _http for n in ("curl", "wget", "http", "https", "xh", "curlie")},
    **{n: _raw_socket for n in ("nc", "ncat", "netcat", "socat", "telnet")},
    **{n: _copy_remote for n in ("scp", "rsync", "sftp")},
    "ssh": _ssh, "ftp": _mail, "mail": _mail, "mailx": _mail, "sendmail": _mail, "mutt": _mail,
    **{n: _dns for n in ("dig", "nslookup", "host", "drill", "ping", "ping6")},
    "pip": _pip, "pip3": _pip, "python": _pip, "python3": _pip,
    **{n: _inline_code for n in ("node", "perl", "ruby", "php", "bun", "deno")},
    **scan_pub.HANDLERS,
}


def combine(scan: Scan, place: Place, cmds: list[Cmd]) -> None:
    """Secrets read and the network reached in one action: that is sending the secrets."""
    from corral.review import scan_git

    for c in cmds:
        if c.name == "git":
            scan_git.git(c, place, scan)
    if not scan.secrets:
        return
    out = [(h, k) for h, k in scan.senders if k != "local"]
    if not out:
        return
    secret = scan.secrets[0]
    host = next((h for h, k in out if k == "drop"), out[0][0])
    if scan.env_secret_only and all(k == "dev" for _, k in out) and secret != "the environment":
        scan.add("credentials", "medium", f"uses {secret} to authenticate to {host}",
                 ("token", "api", "authenticate"), (host,))
        return
    where = "an address computed at run time" if host == "?" or "$" in host else host[:60]
    scan.add("exfiltration", "critical", f"sends {secret} to {where}")
