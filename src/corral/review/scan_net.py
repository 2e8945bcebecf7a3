"""Network, exfiltration, publishing/deployment and git checks for one simple command, and the
script-wide exfiltration judgement (secrets read + network reached = sending the secrets)."""

from __future__ import annotations

import re
from collections.abc import Callable

from corral.review import hosts
from corral.review.findings import Cmd, Scan
from corral.review.places import Place

PUBLISH_VERBS = ("publish", "release", "deploy", "push", "upload", "ship", "roll out",
                 "rollout", "apply")
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


def _publish(cmd: Cmd, what: str, risk: str = "high", objects: tuple[str, ...] = (),
             category: str = "publishing", scan: Scan | None = None) -> None:
    assert scan is not None
    if any(t in ("--dry-run", "--dryrun") for t in cmd.args) and cmd.name in (
            "npm", "pnpm", "yarn", "bun", "cargo", "uv", "poetry", "gem", "helm", "kubectl",
            "aws", "twine", "python", "python3"):
        return  # nothing leaves the machine
    words = tuple(t for t in cmd.args if not t.startswith("-") and len(t) >= 3)
    scan.add(category, risk, what, PUBLISH_VERBS
             if category == "publishing" else ("delete", "destroy", "remove", "tear down",
                                               "drop"), (cmd.name, *objects, *words[:6]))


_PKG = {"npm": "the npm registry", "pnpm": "the npm registry", "yarn": "the npm registry",
        "bun": "the npm registry", "twine": "PyPI", "poetry": "PyPI", "flit": "PyPI",
        "hatch": "PyPI", "uv": "PyPI", "pdm": "PyPI", "cargo": "crates.io",
        "gem": "RubyGems", "nuget": "NuGet", "dotnet": "NuGet"}


def _package(cmd: Cmd, place: Place, scan: Scan) -> None:
    a = [t for t in cmd.args if not t.startswith("-")]
    sub = " ".join(a[:2])
    reg = _PKG[cmd.name]
    if a[:1] in (["publish"], ["upload"], ["push"]) or sub in ("npm publish", "nuget push"):
        if cmd.name == "gem" and a[:1] != ["push"]:
            return
        _publish(cmd, f"publishes the package to {reg} (`{cmd.name} {a[0]}`)", objects=(
            reg.split()[-1], "package", "npm" if "npm" in reg else reg.lower()), scan=scan)
    elif a[:1] in (["unpublish"], ["yank"], ["deprecate"]):
        _publish(cmd, f"withdraws a published package from {reg} (`{cmd.name} {a[0]}`)",
                 scan=scan)
    elif a[:1] in (["install"], ["i"], ["add"]) and any(_FROM_URL.match(t) for t in a[1:]):
        url = next(t for t in a[1:] if _FROM_URL.match(t))
        scan.add("security", "medium", f"installs a package straight from {url[:60]} (its "
                 "install scripts run)", ("install",), (url,))
    elif cmd.name in ("npm", "pnpm", "yarn") and a[:2] == ["config", "set"] and any(
            "strict-ssl" in t or "registry" in t for t in a):
        tls_off = any("strict-ssl" in t for t in a) and any(t in ("false", "0") for t in a)
        scan.add("security", "high" if tls_off else "medium",
                 f"{'turns off TLS checks in' if tls_off else 'changes'} the package registry "
                 f"settings ({' '.join(a[2:4])})", ("registry", "config", "strict-ssl"), ())


_FROM_URL = re.compile(r"(git\+)?https?://|git\+ssh://|git@")


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
            _publish(cmd, "uploads the package to PyPI (twine upload)", objects=("pypi",),
                     scan=scan)
            return
        if mod == "http.server":
            scan.add("scope", "medium", "serves the current directory over HTTP",
                     ("serve", "server", "http"), ())
            return
        if mod != "pip":
            return
        args = rest
    if args[:1] == ("install",) and any(_FROM_URL.match(t) for t in args[1:]):
        url = next(t for t in args[1:] if _FROM_URL.match(t))
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


def _cloud(cmd: Cmd, place: Place, scan: Scan) -> None:
    words = [t for t in cmd.args if not t.startswith("-")]
    text = " ".join(words[:4])
    if cmd.name == "aws" and words[:1] == ["s3"] and len(words) >= 2:
        verb = words[1]
        if verb in ("cp", "sync", "mv") and words[-1].startswith("s3://") and len(words) >= 4:
            scan.senders.append((words[-1], "other"))
            _publish(cmd, f"uploads {place.show(place.resolve(words[2]) or words[2])} to "
                     f"{words[-1]}", objects=(words[-1],), scan=scan)
        elif verb in ("rm", "rb"):
            _publish(cmd, f"deletes S3 data ({text})", category="destructive", scan=scan)
        return
    if cmd.name == "aws" and any(w in ("create-access-key", "create-login-profile")
                                 for w in words):
        scan.add("credentials", "high", f"creates new cloud credentials ({text})", (), ())
        return
    if any(w.startswith(("delete", "terminate", "remove", "destroy", "purge")) for w in words):
        _publish(cmd, f"deletes cloud resources (`{cmd.name} {text}`)",
                 category="destructive", scan=scan)
    elif any(w in ("deploy", "set-iam-policy", "add-iam-policy-binding", "put-bucket-policy",
                   "put-bucket-acl", "update-function-code", "create-stack", "update-stack",
                   "run-instances") for w in words):
        _publish(cmd, f"deploys or changes cloud resources (`{cmd.name} {text}`)", scan=scan)


_DEPLOY: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # tool: (subcommands that change a live system, subcommands that destroy one)
    "kubectl": (frozenset({"apply", "create", "replace", "patch", "scale", "rollout", "set",
                           "edit", "drain", "cordon", "taint", "run", "expose", "autoscale"}),
                frozenset({"delete"})),
    "helm": (frozenset({"install", "upgrade", "rollback", "push"}), frozenset({"uninstall",
                                                                             "delete"})),
    "terraform": (frozenset({"apply", "import", "taint", "state"}), frozenset({"destroy"})),
    "tofu": (frozenset({"apply", "import", "taint", "state"}), frozenset({"destroy"})),
    "pulumi": (frozenset({"up", "update", "refresh", "import"}), frozenset({"destroy"})),
    "firebase": (frozenset({"deploy"}), frozenset()),
    "netlify": (frozenset({"deploy"}), frozenset()),
    "fly": (frozenset({"deploy", "launch", "scale"}), frozenset({"destroy"})),
    "flyctl": (frozenset({"deploy", "launch", "scale"}), frozenset({"destroy"})),
    "serverless": (frozenset({"deploy"}), frozenset({"remove"})),
    "sls": (frozenset({"deploy"}), frozenset({"remove"})),
    "eb": (frozenset({"deploy", "create"}), frozenset({"terminate"})),
    "cdk": (frozenset({"deploy"}), frozenset({"destroy"})),
    "sam": (frozenset({"deploy", "sync"}), frozenset({"delete"})),
    "wrangler": (frozenset({"deploy", "publish"}), frozenset({"delete"})),
    "heroku": (frozenset({"releases:rollback", "ps:scale", "config:set"}),
               frozenset({"apps:destroy"})),
    "mvn": (frozenset({"deploy", "release:perform"}), frozenset()),
    "ansible-playbook": (frozenset({"*"}), frozenset()),
    "vercel": (frozenset({"*", "deploy", "--prod"}), frozenset({"remove", "rm"})),
    "skaffold": (frozenset({"run", "deploy", "apply"}), frozenset({"delete"})),
    "argocd": (frozenset({"app sync", "app set", "app create", "app rollback", "app patch"}),
               frozenset({"app delete"})),
    "nomad": (frozenset({"job run", "run", "job dispatch"}), frozenset({"job stop", "stop"})),
    "kamal": (frozenset({"deploy", "setup", "rollback"}), frozenset({"remove"})),
}


def _deploy(cmd: Cmd, place: Place, scan: Scan) -> None:
    change, destroy = _DEPLOY[cmd.name]
    words = [t for t in cmd.args if not t.startswith("-")]
    sub = words[0] if words else ""
    if cmd.name == "kubectl":
        if sub in ("get", "describe") and any(w in ("secret", "secrets") or w.startswith(
                "secret/") for w in words) and (sub == "describe" or cmd.value("-o", "--output")):
            scan.add("credentials", "high", "reads Kubernetes secrets", ("secret",), ())
            return
        if sub == "config" and "view" in words and "--raw" in cmd.args:
            scan.add("credentials", "high", "prints the Kubernetes credentials (config view "
                     "--raw)", (), ())
            return
    if cmd.name == "kubectl" and sub == "exec" and "--" in cmd.args:
        from corral.review.scan import scan_remote

        inner = cmd.args[cmd.args.index("--") + 1:]
        if inner:
            scan_remote(tuple(inner), f"pod {words[1] if len(words) > 1 else '?'}", scan)
        return
    target = " ".join(words[:3]) or " ".join(cmd.args[:2])
    if cmd.name in ("argocd", "nomad") and " ".join(words[:2]) in change | destroy:
        sub = " ".join(words[:2])
    if sub in destroy:
        risk = "critical" if cmd.name in ("terraform", "tofu", "pulumi") or (
            cmd.name == "kubectl" and any(w in ("namespace", "ns", "--all") for w in cmd.args)) \
            else "high"
        _publish(cmd, f"destroys live infrastructure (`{cmd.name} {target}`)", risk=risk,
                 category="destructive", scan=scan)
    elif sub in change or ("*" in change and (sub not in ("help", "version", "plan", "list",
                                                         "ls", "login", "whoami", "inspect")
                                             or "--prod" in cmd.args)):
        _publish(cmd, f"deploys to or changes a live system (`{cmd.name} {target}`)",
                 objects=tuple(w for w in cmd.args if w in ("prod", "production", "staging")),
                 scan=scan)


def _gradle(cmd: Cmd, place: Place, scan: Scan) -> None:
    if any(t.startswith("publish") for t in cmd.args):
        _publish(cmd, "publishes artifacts (gradle publish)", scan=scan)


def _container(cmd: Cmd, place: Place, scan: Scan) -> None:
    words = [t for t in cmd.args if not t.startswith("-")]
    sub = words[0] if words else ""
    if sub == "stack" and "deploy" in words:
        _publish(cmd, f"deploys a Docker stack (`{cmd.name} stack deploy`)", scan=scan)
    elif sub == "push" or (sub in ("buildx", "build") and "--push" in cmd.args):
        image = words[1] if len(words) > 1 and sub == "push" else "the image"
        _publish(cmd, f"pushes {image} to a container registry", objects=(image,), scan=scan)
    elif sub in ("run", "create", "exec"):
        if sub == "exec":
            _container_exec(cmd, scan)
        a = " ".join(cmd.args)
        if "--privileged" in cmd.args or re.search(r"(-v|--volume|--mount)[ =]+(/|/var/run/"
                                                   r"docker\.sock|/etc|/root|~)(:|,|\s)", a) or \
                "--pid=host" in a or "--cap-add=SYS_ADMIN" in a or "--cap-add=ALL" in a:
            scan.add("security", "high", "gives a container root access to the host "
                     "(privileged, host mounts or host PID)", ("privileged", "docker"), ())
    elif sub in ("system", "volume") and any(w in ("prune", "rm") for w in words) and (
            sub == "volume" or "--volumes" in cmd.args):
        scan.add("destructive", "high", "deletes Docker volumes (their data is gone)",
                 ("prune", "delete", "remove", "clean"), ("volume", "volumes", "docker"))


def _container_exec(cmd: Cmd, scan: Scan) -> None:
    from corral.review.scan import scan_remote

    args = list(cmd.args)
    i = args.index("exec") + 1
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-e", "--env", "-u", "--user", "-w", "--workdir",
                              "--env-file") else 1
    if i + 1 < len(args):
        scan_remote(tuple(args[i + 1:]), f"container {args[i]}", scan)


def _gh(cmd: Cmd, place: Place, scan: Scan) -> None:
    w = [t for t in cmd.args if not t.startswith("-")]
    pair = tuple(w[:2])
    if pair in (("release", "create"), ("release", "upload"), ("release", "edit")):
        _publish(cmd, f"publishes a GitHub release (`gh {' '.join(w[:3])}`)", scan=scan)
    elif pair == ("release", "delete"):
        _publish(cmd, "deletes a GitHub release", category="destructive", scan=scan)
    elif pair == ("pr", "merge"):
        _publish(cmd, f"merges a pull request (`gh {' '.join(w[:3])}`)", objects=("merge",),
                 scan=scan)
    elif pair == ("repo", "delete"):
        scan.add("destructive", "critical", "deletes a GitHub repository")
    elif pair in (("repo", "edit"), ("repo", "create")) and any(
            "public" in t for t in cmd.args):
        scan.add("publishing", "high", "makes a repository public", ("public", "publish",
                                                                     "open source"), ())
    elif pair in (("secret", "set"), ("variable", "set"), ("workflow", "run")):
        scan.add("publishing", "medium", f"changes CI settings (`gh {' '.join(pair)}`)",
                 ("secret", "workflow", "ci"), ())
    elif w[:1] == ["api"] and re.search(r"(-X|--method)[ =]?(DELETE|POST|PUT|PATCH)",
                                        " ".join(cmd.args)):
        scan.add("publishing", "medium", "changes GitHub data through the API (gh api)",
                 ("api",), ())


_SQL_DROP = re.compile(r"\bDROP\s+(DATABASE|SCHEMA|TABLE)\b|\bTRUNCATE\s+\w|\bFLUSHALL\b|"
                       r"\bFLUSHDB\b|dropDatabase\(|\bDELETE\s+FROM\s+[\w.\"]+\s*(;|$)", re.I)


def _database(cmd: Cmd, place: Place, scan: Scan) -> None:
    text = " ".join(cmd.args)
    if cmd.name == "dropdb" or _SQL_DROP.search(text):
        m = _SQL_DROP.search(text)
        what = m.group(0).strip() if m else "dropdb"
        scan.add("destructive", "high", f"deletes database data ({what})",
                 ("drop", "delete", "truncate", "reset the database", "wipe"),
                 tuple(t for t in cmd.args if not t.startswith("-"))[:4])


HANDLERS: dict[str, Callable[[Cmd, Place, Scan], None]] = {
    **{n: _http for n in ("curl", "wget", "http", "https", "xh", "curlie")},
    **{n: _raw_socket for n in ("nc", "ncat", "netcat", "socat", "telnet")},
    **{n: _copy_remote for n in ("scp", "rsync", "sftp")},
    "ssh": _ssh, "ftp": _mail, "mail": _mail, "mailx": _mail, "sendmail": _mail, "mutt": _mail,
    **{n: _dns for n in ("dig", "nslookup", "host", "drill", "ping", "ping6")},
    **{n: _package for n in _PKG},
    "pip": _pip, "pip3": _pip, "python": _pip, "python3": _pip,
    **{n: _inline_code for n in ("node", "perl", "ruby", "php", "bun", "deno")},
    **{n: _cloud for n in ("aws", "gcloud", "az", "gsutil", "s3cmd", "rclone", "doctl")},
    **{n: _deploy for n in _DEPLOY},
    "gradle": _gradle, "gradlew": _gradle,
    "docker": _container, "podman": _container, "buildah": _container, "nerdctl": _container,
    "gh": _gh,
    **{n: _database for n in ("psql", "mysql", "mariadb", "sqlite3", "mongo", "mongosh",
                              "redis-cli", "dropdb", "cqlsh", "clickhouse-client")},
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
