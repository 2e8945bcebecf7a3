"""The credential broker: real secrets stay in the supervisor, the sandbox holds placeholders.

Each brokered ``Credential`` has a secret (read outside the sandbox), the destinations it
belongs to (``host`` or ``host:port``, port 443 by default) and a random placeholder that the
sandbox sees instead (in an environment variable, a git credential helper, a pip index URL).
The proxy intercepts HTTPS to exactly those destinations (the local CA of limited mode) and,
request by request:

- a placeholder in a header value (also inside ``Basic`` credentials) or the request target is
  replaced by the secret when the request goes to a destination of *that* credential;
- a placeholder anywhere else is an exfiltration attempt and the request is refused: another
  credential's host, plain ``http://``, a host name (DNS), a request body to a host that is
  not the credential's own, or a tunnel target;
- a secret reflected in a response (headers or body) from a brokered destination is masked
  with a string of the same length before the sandbox sees it.

Plain data in, decisions out: ``Broker.outbound`` rewrites or refuses one request head,
``Broker.body_guard`` and ``Broker.redactor`` are the per-message stream filters. The proxy
(``corral.netproxy.http``) applies them and turns refusals into journaled decisions.
"""

from __future__ import annotations

import base64
import re
import secrets as _random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from corral.errors import CorralError
from corral.netproxy.addresses import HostError
from corral.netproxy.policy import DomainPattern

PREFIX = "corral-brokered-"
REASON = "credential_exfiltration"
USED = "credential_brokered"
MAX_SECRET = 16 * 1024
_SLUG = re.compile(r"[^a-z0-9]+")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_MASK = b"corral-redacted"


@dataclass(frozen=True)
class Destination:
    """Where a credential may go: a host pattern (``api.openai.com``, ``*.example.com``) and a
    port (443 unless given)."""

    pattern: DomainPattern
    port: int

    @classmethod
    def parse(cls, text: str) -> Destination:
        raw = text.strip()
        host, port = raw, 443
        head, sep, tail = raw.rpartition(":")
        if sep and head and not head.endswith(":") and (not head.startswith("[")
                                                        or head.endswith("]")):
            if not (tail.isascii() and tail.isdigit()) or not 0 < int(tail) < 65536:
                raise CorralError("secrets", f"bad port in broker host {text!r}",
                                  "write host or host:port, e.g. api.openai.com or "
                                  "127.0.0.2:8443")
            host, port = head, int(tail)
        if host == "*" or host.startswith("**"):
            raise CorralError("secrets", f"broker host {text!r} is too wide: a credential "
                              "must name the hosts it belongs to",
                              "write the exact host, or *.example.com for its subdomains")
        try:
            return cls(DomainPattern.parse(host), port)
        except (CorralError, HostError) as exc:
            msg = exc.message if isinstance(exc, CorralError) else str(exc)
            raise CorralError("secrets", f"bad broker host {text!r}: {msg}") from None

    def matches(self, host: str, port: int) -> bool:
        return port == self.port and self.pattern.matches(host)

    def __str__(self) -> str:
        return self.pattern.text if self.port == 443 else f"{self.pattern.text}:{self.port}"


def _b64_cores(value: bytes) -> tuple[bytes, ...]:
    """The parts of ``value``'s base64 (standard and URL-safe) that do not depend on where it
    starts within the encoded bytes: one per alignment (0, 1 or 2 bytes before it)."""
    out: list[bytes] = []
    for off in range(3):
        enc = base64.b64encode(bytes(off) + value)
        start, end = -(-8 * off // 6), (8 * off + 8 * len(value)) // 6
        core = enc[start:end]
        out += [core, core.replace(b"+", b"-").replace(b"/", b"_")]
    return tuple(dict.fromkeys(out))


@dataclass(frozen=True)
class Credential:
    """One brokered secret. Build with ``Credential.new``: the placeholder is random per
    session, so a placeholder learnt in one run is worth nothing in the next."""

    name: str
    destinations: tuple[Destination, ...]
    secret: str = field(repr=False)
    placeholder: str
    core: bytes = field(repr=False)  # the random part, what detection looks for
    encoded: tuple[bytes, ...] = field(repr=False, default=())

    @classmethod
    def new(cls, name: str, hosts: Sequence[str], secret: str) -> Credential:
        if not _NAME.match(name):
            raise CorralError("secrets", f"bad credential name {name!r}",
                              "use letters, digits, '.', '_' and '-' (at most 63)")
        if not hosts:
            raise CorralError("secrets", f"credential {name} names no host",
                              f"set [secrets.broker.credentials.{name}] hosts")
        check_secret(name, secret)
        core = _random.token_hex(16)
        slug = _SLUG.sub("-", name.lower()).strip("-")[:20] or "secret"
        placeholder = f"{PREFIX}{slug}-{core}"
        return cls(name, tuple(Destination.parse(h) for h in hosts), secret, placeholder,
                   core.encode(), _b64_cores(placeholder.encode()))

    def goes_to(self, host: str, port: int) -> bool:
        return any(d.matches(host, port) for d in self.destinations)

    @property
    def hosts(self) -> str:
        return ", ".join(str(d) for d in self.destinations)


def check_secret(name: str, secret: str) -> None:
    """A secret goes into HTTP header values: printable ASCII without spaces, bounded."""
    if not secret:
        raise CorralError("secrets", f"credential {name}: the secret is empty")
    if len(secret) > MAX_SECRET:
        raise CorralError("secrets", f"credential {name}: the secret is longer than "
                          f"{MAX_SECRET} characters")
    if not (secret.isascii() and secret.isprintable()) or " " in secret:
        raise CorralError("secrets", f"credential {name}: the secret holds spaces, control or "
                          "non-ASCII characters, which cannot go into an HTTP header")


@dataclass(frozen=True)
class Outbound:
    """A request head after the broker: the (rewritten) target and headers, the credentials
    attached, or the credential whose placeholder was about to leak and where it was."""

    target: str
    headers: list[tuple[bytes, bytes]]
    used: tuple[str, ...] = ()
    leaked: Credential | None = None
    where: str = ""
    injected: tuple[bytes, ...] = ()  # encoded forms of secrets put in (masked in responses)


class Leak(Exception):
    """A placeholder found in a stream it may not be in."""

    def __init__(self, credential: Credential, where: str) -> None:
        super().__init__(f"placeholder of {credential.name} in {where}")
        self.credential = credential
        self.where = where


class Broker:
    """The session's brokered credentials (immutable after construction)."""

    def __init__(self, credentials: Iterable[Credential]) -> None:
        self.credentials = tuple(credentials)
        names = [c.name for c in self.credentials]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise CorralError("secrets", f"credential {sorted(dup)[0]} is defined twice")
        self._longest = max((len(n) for c in self.credentials
                             for n in (c.core, *c.encoded)), default=1)

    def __bool__(self) -> bool:
        return bool(self.credentials)

    def env_placeholders(self) -> dict[str, str]:
        """name -> placeholder (for tests and docs; the env comes from ``brokerconfig``)."""
        return {c.name: c.placeholder for c in self.credentials}

    def covers(self, host: str, port: int) -> bool:
        """Is ``host:port`` a brokered destination (its HTTPS is intercepted)?"""
        return any(c.goes_to(host, port) for c in self.credentials)

    def find(self, data: bytes) -> Credential | None:
        """The credential whose placeholder ``data`` carries (any case, or base64), if any."""
        if not data:
            return None
        lower = data.lower()
        for c in self.credentials:
            if c.core in lower or any(n in data for n in c.encoded):
                return c
        return None

    def masked(self, text: str) -> str:
        """``text`` with every placeholder's random part replaced by ``{placeholder}`` (what
        a journaled host name shows instead)."""
        for c in self.credentials:
            for n in (c.core, *c.encoded):
                text = re.sub(re.escape(n.decode()), "{placeholder}", text, flags=re.I)
        return text

    def in_name(self, host: str) -> Credential | None:
        """A placeholder spelt into a host name (``<placeholder>.evil.example``: DNS)."""
        return self.find(host.encode("ascii", "replace"))

    def outbound(self, host: str, port: int, target: str,
                 headers: list[tuple[bytes, bytes]], tls: bool) -> Outbound:
        """Attach the secrets that belong to ``host:port`` (only over an intercepted TLS
        connection), or name the credential whose placeholder may not go there. Whatever still
        carries a placeholder after the substitution (another credential's, or one spelt in
        another case or encoding) is refused."""
        mine = tuple(c for c in self.credentials if tls and c.goes_to(host, port))
        used: list[str] = []
        injected: list[bytes] = []
        raw = target.encode("ascii", "replace")
        if self.find(raw) is not None:
            raw = _swap(mine, raw, used)
            c = self.find(raw)
            if c is not None:
                return Outbound(target, headers, leaked=c, where="the request URL")
        out: list[tuple[bytes, bytes]] = []
        for k, v in headers:
            if self.find(v) is not None:
                v = _basic(mine, v, used, injected) or _swap(mine, v, used)
                c = self.find(v)
                if c is not None:
                    return Outbound(target, headers, leaked=c,
                                    where=f"the {k.decode('ascii', 'replace')} header")
            out.append((k, v))
        return Outbound(raw.decode("ascii"), out, tuple(dict.fromkeys(used)),
                        injected=tuple(injected))

    def body_guard(self, host: str, port: int, tls: bool) -> BodyGuard | None:
        """The request-body filter for ``host:port``: every placeholder is refused, except in
        bodies to a brokered destination over intercepted TLS (None). Those hosts are the
        user's own services (the model provider, a registry): an agent's tool output sent to
        its model may quote any placeholder (``env``), which is worthless there and never
        swapped into a body."""
        if tls and self.covers(host, port):
            return None
        return BodyGuard(self, self._longest) if self.credentials else None

    def redactor(self, host: str, port: int, injected: Sequence[bytes] = ()) -> Redactor | None:
        """The response filter for a brokered destination: its secrets masked."""
        mine = [c.secret.encode() for c in self.credentials if c.goes_to(host, port)]
        mine += [i for i in injected if i not in mine]
        return Redactor(tuple(mine)) if mine else None


def _swap(mine: Sequence[Credential], value: bytes, used: list[str]) -> bytes:
    """``value`` with the placeholders of ``mine`` replaced by their secrets."""
    for c in mine:
        ph = c.placeholder.encode()
        if ph in value:
            value = value.replace(ph, c.secret.encode())
            used.append(c.name)
    return value


def _basic(mine: Sequence[Credential], value: bytes, used: list[str],
           injected: list[bytes]) -> bytes | None:
    """``Basic base64(user:placeholder)`` with the placeholder replaced; None if ``value`` is
    not such a value or carries none of ``mine``."""
    scheme, _, token = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        plain = base64.b64decode(token.strip(), validate=True)
    except ValueError:
        return None
    n = len(used)
    swapped = _swap(mine, plain, used)
    if len(used) == n:
        return None
    enc = base64.b64encode(swapped)
    injected.append(enc)
    return scheme + b" " + enc


class BodyGuard:
    """Streams a request body, raising ``Leak`` when a chunk (with the end of the previous one,
    so a placeholder split across chunks is seen) carries a placeholder."""

    def __init__(self, broker: Broker, longest: int) -> None:
        self.broker = broker
        self.keep = longest - 1
        self.tail = b""

    def feed(self, data: bytes) -> bytes:
        window = self.tail + data
        c = self.broker.find(window)
        if c is not None:
            raise Leak(c, "the request body")
        self.tail = window[-self.keep:] if self.keep > 0 else b""
        return data

    def flush(self) -> bytes:
        return b""

    def value(self, data: bytes) -> bytes:
        c = self.broker.find(data)
        if c is not None:
            raise Leak(c, "a trailer")
        return data


def mask(n: int) -> bytes:
    return (_MASK + b"*" * n)[:n]


class Redactor:
    """Masks ``secrets`` in a stream with same-length text (so Content-Length still holds),
    holding back only a tail that could be the start of one."""

    def __init__(self, secrets: tuple[bytes, ...]) -> None:
        self.secrets = secrets
        self.held = b""

    def value(self, data: bytes) -> bytes:
        for s in self.secrets:
            if s in data:
                data = data.replace(s, mask(len(s)))
        return data

    def feed(self, data: bytes) -> bytes:
        buf = self.value(self.held + data)
        hold = 0
        for s in self.secrets:
            first = s[:1]
            i = buf.rfind(first, max(0, len(buf) - len(s) + 1))
            while i != -1:
                if s.startswith(buf[i:]):
                    hold = max(hold, len(buf) - i)
                    break
                i = buf.rfind(first, max(0, len(buf) - len(s) + 1), i)
        self.held = buf[len(buf) - hold:] if hold else b""
        return buf[:len(buf) - hold] if hold else buf

    def flush(self) -> bytes:
        out, self.held = self.held, b""
        return out
