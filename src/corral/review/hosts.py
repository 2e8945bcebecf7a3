"""Network destinations as the reviewer judges them: local, well-known developer services,
cloud metadata, raw addresses, and sites that exist to receive pasted or dropped data."""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

# Sites whose purpose is to receive data from anyone: pastebins, file drops, request catchers,
# tunnels, out-of-band interaction servers, chat webhooks.
_DROP = (
    "pastebin.com", "paste.ee", "hastebin.com", "hastebin.skyra.pw", "dpaste.com", "dpaste.org",
    "ghostbin.com", "termbin.com", "ix.io", "sprunge.us", "0x0.st", "transfer.sh", "file.io",
    "temp.sh", "bashupload.com", "catbox.moe", "litterbox.catbox.moe", "anonfiles.com",
    "gofile.io", "pixeldrain.com", "webhook.site", "requestbin.com", "requestbin.net",
    "pipedream.net", "beeceptor.com", "hookbin.com", "ngrok.io", "ngrok-free.app", "ngrok.app",
    "trycloudflare.com", "serveo.net", "localtunnel.me", "loca.lt", "burpcollaborator.net",
    "oastify.com", "interact.sh", "oast.fun", "oast.me", "oast.pro", "oast.live", "oast.site",
    "dnslog.cn", "canarytokens.com", "requestcatcher.com", "postb.in", "ptpb.pw", "rentry.co",
    "controlc.com", "justpaste.it", "privatebin.net",
)
_DROP_PATHS = (("discord.com", "/api/webhooks"), ("discordapp.com", "/api/webhooks"),
               ("api.telegram.org", "/bot"), ("hooks.slack.com", "/"))

# Well-known developer services: fetching from them is everyday work.
_DEV = (
    "github.com", "api.github.com", "raw.githubusercontent.com", "objects.githubusercontent.com",
    "codeload.github.com", "gitlab.com", "bitbucket.org", "pypi.org", "files.pythonhosted.org",
    "registry.npmjs.org", "npmjs.com", "registry.yarnpkg.com", "crates.io", "static.crates.io",
    "proxy.golang.org", "sum.golang.org", "pkg.go.dev", "go.dev", "rubygems.org",
    "repo.maven.apache.org", "repo1.maven.org", "plugins.gradle.org", "nuget.org",
    "api.nuget.org", "hub.docker.com", "registry-1.docker.io", "ghcr.io", "quay.io",
    "deb.debian.org", "archive.ubuntu.com", "security.debian.org", "nodejs.org", "python.org",
    "docs.python.org", "developer.mozilla.org", "stackoverflow.com", "readthedocs.io",
    "readthedocs.org", "httpbin.org", "api.openai.com", "huggingface.co",
)

METADATA_IPS = ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
_METADATA_NAMES = ("metadata.google.internal", "metadata", "instance-data")
_PRIVATE_NETS = tuple(ipaddress.ip_network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7"))
_HOSTLIKE = re.compile(r"^(?:[A-Za-z0-9-]+\.)+[A-Za-z]{2,}(?::\d+)?(?:/.*)?$")


def _suffix(host: str, names: tuple[str, ...]) -> bool:
    return any(host == n or host.endswith("." + n) for n in names)


def host_of(word: str) -> str | None:
    """The host named by a URL or a bare ``host[:port][/path]`` word, lower-cased."""
    w = word.strip().strip("\"'")
    if "://" in w:
        try:
            h = urlsplit(w).hostname
        except ValueError:
            return None
        return h.lower() if h else None
    if _HOSTLIKE.match(w) and not w.endswith((".py", ".js", ".ts", ".sh", ".json", ".txt",
                                              ".md", ".toml", ".yaml", ".yml", ".lock")):
        return w.split("/", 1)[0].split(":", 1)[0].lower()
    return None


def path_of(word: str) -> str:
    w = word.strip().strip("\"'")
    if "://" in w:
        try:
            return urlsplit(w).path or "/"
        except ValueError:
            return "/"
    return "/" + w.split("/", 1)[1] if "/" in w else "/"


def kind(host: str, path: str = "/") -> str:
    """``local`` | ``metadata`` | ``private`` | ``drop`` | ``dev`` | ``ip`` | ``other``."""
    h = host.strip("[]").lower().rstrip(".")
    if h in METADATA_IPS or h in _METADATA_NAMES:
        return "metadata"
    if h in ("localhost", "ip6-localhost") or h.endswith(".localhost"):
        return "local"
    try:
        ip = ipaddress.ip_address(h)
    except ValueError:
        ip = None
    if ip is not None:
        if ip.is_loopback or ip.is_unspecified:
            return "local"
        if ip.is_link_local or any(ip in net for net in _PRIVATE_NETS if net.version == ip.version):
            return "private"
        return "ip"
    if _suffix(h, _DROP) or any(_suffix(h, (dh,)) and path.startswith(dp)
                                for dh, dp in _DROP_PATHS):
        return "drop"
    if _suffix(h, _DEV):
        return "dev"
    return "other"
