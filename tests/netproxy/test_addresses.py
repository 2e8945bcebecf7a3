"""Address normalisation and classification, including property tests over every encoding."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corral.netproxy.addresses import HostError, is_public, non_public_reason, normalize_host


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("169.254.169.254", "169.254.169.254"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("[::1]", "::1"),
        ("[fe80::1%25eth0]", "fe80::1"),
        ("fe80::1%eth0", "fe80::1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("EXAMPLE.com.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("１２７.０.０.１", "127.0.0.1"),  # full-width digits map to ASCII under IDNA
    ],
)
def test_normalize(raw: str, want: str) -> None:
    assert normalize_host(raw).name == want


@pytest.mark.parametrize(
    "raw",
    ["", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "0x100.1.1.1", "09.1.1.1", "example.0x7f",
     "a..b", ".a", "[example.com]", "[::1", "a b.com", "-bad-.com", "x" * 64 + ".com",
     "1.16777216", "ex*ample.com"],
)
def test_normalize_refuses(raw: str) -> None:
    with pytest.raises(HostError):
        normalize_host(raw)


@pytest.mark.parametrize(
    ("ip", "why"),
    [
        ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("172.31.0.1", "private"),
        ("192.168.1.1", "private"), ("100.64.0.1", "cgnat"), ("169.254.169.254", "link-local"),
        ("0.0.0.0", "unspecified"), ("255.255.255.255", "broadcast"), ("224.0.0.1", "multicast"),
        ("240.0.0.1", "reserved"), ("198.18.0.1", "benchmarking"), ("192.0.2.1", "documentation"),
        ("::1", "loopback"), ("::", "unspecified"), ("fd00::1", "ula"), ("fe80::1", "link-local"),
        ("ff02::1", "multicast"), ("::ffff:8.8.8.8", "v4-mapped"), ("::127.0.0.1", "v4-compatible"),
        ("64:ff9b::a00:1", "nat64-private"), ("2002:7f00:1::", "6to4-loopback"),
        ("2001:db8::1", "documentation"), ("2001::1", "teredo"), ("fec0::1", "site-local"),
        ("100::1", "discard"), ("4000::1", "reserved"),
    ],
)
def test_non_public(ip: str, why: str) -> None:
    assert non_public_reason(ipaddress.ip_address(ip)) == why


@pytest.mark.parametrize("ip", ["8.8.8.8", "1.1.1.1", "2606:4700::1111", "64:ff9b::808:808",
                                "2002:808:808::1", "93.184.216.34"])
def test_public(ip: str) -> None:
    assert is_public(ipaddress.ip_address(ip))


def _encodings(value: int) -> list[str]:
    b = value.to_bytes(4, "big")
    return [
        str(value),
        hex(value),
        "0" + oct(value)[2:] if value else "0",
        ".".join(str(x) for x in b),
        ".".join(oct(x).replace("0o", "0") for x in b),
        ".".join(hex(x) for x in b),
        f"{b[0]}.{int.from_bytes(b[1:], 'big')}",
        f"{b[0]}.{b[1]}.{int.from_bytes(b[2:], 'big')}",
        f"0x{b[0]:x}.{int.from_bytes(b[1:], 'big')}",
        ".".join(str(x) for x in b) + ".",
    ]


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_every_ipv4_encoding_normalises_to_the_same_address(value: int) -> None:
    want = ipaddress.IPv4Address(value)
    for text in _encodings(value):
        host = normalize_host(text)
        assert host.ip == want, text


_PRIVATE_V4 = [ipaddress.ip_network(n) for n in (
    "127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
    "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "240.0.0.0/4",
)]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_PRIVATE_V4), st.integers(0, 2**32 - 1), st.sampled_from(range(10)))
def test_non_public_v4_is_refused_in_every_spelling_and_ipv6_wrapping(
    net: ipaddress.IPv4Network, r: int, enc: int
) -> None:
    ip = net[r % net.num_addresses]
    host = normalize_host(_encodings(int(ip))[enc])
    assert host.ip is not None and not is_public(host.ip)
    for v6 in (f"::ffff:{ip}", f"::{ip}", f"64:ff9b::{ip}"):
        wrapped = normalize_host(f"[{v6}]").ip
        assert wrapped is not None and not is_public(wrapped), v6
    sixtofour = ipaddress.IPv6Address((0x2002 << 112) | (int(ip) << 80))
    assert not is_public(sixtofour)


@settings(max_examples=500, deadline=None)
@given(st.ip_addresses())
def test_classifier_never_calls_python_non_global_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    # Independent reference: whatever Python's stdlib considers non-global we refuse too
    # (we refuse more, e.g. all v4-mapped forms and documentation ranges).
    if is_public(ip):
        assert ip.is_global and not ip.is_multicast, ip
    assert normalize_host(str(ip)).ip == ip


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_normalize_fuzz_never_crashes(text: str) -> None:
    try:
        host = normalize_host(text)
    except HostError:
        return
    assert host.name == host.name.lower()
    assert normalize_host(host.name) == host
