"""Host names and IP addresses: normalise every spelling, and say which addresses are not public.

The proxy must never be talked into connecting to loopback, private or metadata addresses.
Attackers spell those addresses in odd ways (``2130706433``, ``0177.0.0.1``, ``0x7f.1``,
``127.1``, ``[::ffff:127.0.0.1]``, ``[fe80::1%25eth0]``), so every host is first reduced to one
canonical form here, and classification works on real ``ipaddress`` objects only.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from dataclasses import dataclass

import idna

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class HostError(ValueError):
    """A host that cannot be a valid target (bad characters, bad number, too long)."""


@dataclass(frozen=True)
class Host:
    """A normalised target host: ``name`` is the canonical text; ``ip`` is set for literals."""

    name: str
    ip: IPAddress | None = None

    @property
    def is_ip(self) -> bool:
        return self.ip is not None


_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")
_NUMERIC_PART = re.compile(r"^(?:0[xX][0-9a-fA-F]*|[0-9]+)$")


def _parse_v4_part(part: str) -> int:
    if part[:2] in ("0x", "0X"):
        return int(part[2:], 16) if len(part) > 2 else 0
    if len(part) > 1 and part[0] == "0":
        if not all(c in "01234567" for c in part):
            raise HostError(f"bad octal number {part!r} in address")
        return int(part, 8)
    return int(part, 10)


def parse_ipv4_loose(text: str) -> ipaddress.IPv4Address | None:
    """Parse IPv4 the way ``inet_aton`` and browsers do: 1-4 parts, decimal/octal/hex.

    Returns None when ``text`` does not end in a number (so it is a name). Raises HostError when
    it ends in a number but is not a valid address (``1.2.3.4.5``, ``example.0x7f``, ``256.1``):
    such a host is ambiguous between resolvers and is refused rather than guessed at.
    """
    parts = text.split(".")
    if not parts or not _NUMERIC_PART.match(parts[-1]):
        return None
    if len(parts) > 4 or not all(_NUMERIC_PART.match(p) for p in parts):
        raise HostError(f"host {text!r} looks numeric but is not an IPv4 address")
    nums = [_parse_v4_part(p) for p in parts]
    last = nums.pop()
    if any(n > 255 for n in nums) or last >= 256 ** (4 - len(nums)):
        raise HostError(f"host {text!r} is out of range for an IPv4 address")
    value = last
    for i, n in enumerate(nums):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


_PLAIN_ASCII = re.compile(r"^[A-Za-z0-9_.-]+$")


@functools.lru_cache(maxsize=4096)
def normalize_host(raw: str) -> Host:
    """Canonical host: lower-case, no trailing dot, IDNA (punycode) for names, IPs canonical.

    Accepts IPv6 with or without brackets and with a zone id (``%eth0`` or URL-encoded
    ``%25eth0``); the zone is dropped since it does not change the address class.
    """
    text = raw.strip()
    if not text:
        raise HostError("empty host")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
        if ":" not in text:
            raise HostError(f"bracketed host {raw!r} is not an IPv6 address")
    if ":" in text:
        addr = text.split("%", 1)[0]
        try:
            v6 = ipaddress.IPv6Address(addr)
        except ValueError as exc:
            raise HostError(f"bad IPv6 address {raw!r}") from exc
        return Host(str(v6), v6)
    if text.endswith("."):
        text = text[:-1]
    if not text or ".." in text or text.startswith("."):
        raise HostError(f"bad host name {raw!r}")
    v4 = parse_ipv4_loose(text)
    if v4 is not None:
        return Host(str(v4), v4)
    if _PLAIN_ASCII.match(text) and "xn--" not in text.lower():
        ascii_name = text  # UTS 46 maps plain ASCII to lower case only: skip the slow path
    else:
        ascii_name = _idna(text, raw)
    ascii_name = ascii_name.lower()
    if len(ascii_name) > 253:
        raise HostError("host name longer than 253 characters")
    for label in ascii_name.split("."):
        if not _LABEL.match(label):
            raise HostError(f"host {raw!r} has an invalid label {label!r}")
    # A name whose last label is numeric after IDNA mapping (full-width digits) is numeric.
    v4 = parse_ipv4_loose(ascii_name)
    if v4 is not None:
        return Host(str(v4), v4)
    return Host(ascii_name)


def _idna(text: str, raw: str) -> str:
    try:
        return idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError) as exc:
        raise HostError(f"host {raw!r} is not a valid internationalised name") from exc


def _nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


_V4_SPECIAL: tuple[tuple[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]], ...] = (
    ("unspecified", _nets("0.0.0.0/8")),
    ("loopback", _nets("127.0.0.0/8")),
    ("private", _nets("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("cgnat", _nets("100.64.0.0/10")),
    ("link-local", _nets("169.254.0.0/16")),
    ("ietf-reserved", _nets("192.0.0.0/24", "192.31.196.0/24", "192.52.193.0/24",
                            "192.88.99.0/24", "192.175.48.0/24")),
    ("documentation", _nets("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")),
    ("benchmarking", _nets("198.18.0.0/15")),
    ("multicast", _nets("224.0.0.0/4")),
    ("broadcast", _nets("255.255.255.255/32")),
    ("reserved", _nets("240.0.0.0/4")),
)

_V6_SPECIAL: tuple[tuple[str, tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]], ...] = (
    ("unspecified", _nets("::/128")),
    ("loopback", _nets("::1/128")),
    ("v4-mapped", _nets("::ffff:0:0/96", "::ffff:0:0:0/96")),
    ("v4-compatible", _nets("::/96")),
    ("nat64-local", _nets("64:ff9b:1::/48")),
    ("discard", _nets("100::/64")),
    ("teredo", _nets("2001::/32")),
    ("benchmarking", _nets("2001:2::/48")),
    ("orchid", _nets("2001:10::/28", "2001:20::/28")),
    ("ietf-reserved", _nets("2001::/23")),  # found by the property test against ipaddress
    ("documentation", _nets("2001:db8::/32", "3fff::/20")),
    ("srv6", _nets("5f00::/16")),
    ("ula", _nets("fc00::/7")),
    ("link-local", _nets("fe80::/10")),
    ("site-local", _nets("fec0::/10")),
    ("multicast", _nets("ff00::/8")),
)

_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def non_public_reason(ip: IPAddress) -> str | None:
    """Why ``ip`` is not a public unicast address (``"loopback"``, ``"private"``, ...), or None.

    IPv6 forms that embed an IPv4 address are judged by the embedded address (6to4, NAT64);
    v4-mapped and v4-compatible forms are always refused, because some stacks route them to the
    embedded IPv4 address and some do not.
    """
    if isinstance(ip, ipaddress.IPv4Address):
        for reason, nets in _V4_SPECIAL:
            if any(ip in n for n in nets):
                return reason
        return None
    for reason, nets in _V6_SPECIAL:
        if any(ip in n for n in nets):
            return reason
    if ip in _NAT64:
        inner = non_public_reason(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
        return f"nat64-{inner}" if inner else None
    if ip in _SIX_TO_FOUR:
        inner = non_public_reason(ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF))
        return f"6to4-{inner}" if inner else None
    if ip not in _GLOBAL_UNICAST:
        return "reserved"
    return None


def is_public(ip: IPAddress) -> bool:
    return non_public_reason(ip) is None
