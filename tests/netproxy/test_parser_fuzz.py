"""Fuzz the wire parsers: any bytes give a parsed head or a clean HttpError, nothing else."""

from __future__ import annotations

import asyncio

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corral.netproxy.http import HttpError, Limits, Request, read_request, split_authority

LIMITS = Limits(max_head=4096, head_timeout=1)

_head_bytes = st.one_of(
    st.binary(max_size=600),
    st.lists(
        st.sampled_from([b"GET ", b"CONNECT ", b"http://", b"a.test", b":", b"80", b" HTTP/1.1",
                         b"\r\n", b"\n", b"Host: x", b"\t", b" ", b"\x00", b"Transfer-Encoding: ",
                         b"chunked", b"Content-Length: ", b"-1", b"\xff", b"[::1]"]),
        max_size=40,
    ).map(b"".join),
)


async def _parse(data: bytes) -> object:
    r = asyncio.StreamReader(limit=LIMITS.max_head)
    r.feed_data(data)
    r.feed_eof()
    return await read_request(r, LIMITS, 1)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_head_bytes, st.booleans())
def test_read_request_fuzz(data: bytes, terminate: bool) -> None:
    if terminate:
        data += b"\r\n\r\n"
    try:
        head = asyncio.run(_parse(data))
    except HttpError as exc:
        assert 400 <= exc.status < 600
        return
    if head is not None:
        assert isinstance(head, Request)
        assert head.event.http_version in (b"1.0", b"1.1")
        assert b"\n" not in head.event.target


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=40), st.sampled_from([None, 80]))
def test_split_authority_fuzz(text: str, default: int | None) -> None:
    try:
        host, port = split_authority(text, default)
    except HttpError as exc:
        assert exc.status == 400
        return
    assert host and 0 <= port <= 99999


def test_unicode_digits_are_not_ports() -> None:
    # Found by test_split_authority_fuzz: str.isdigit() accepts '²', which int() then rejects.
    import pytest

    from corral.errors import CorralError
    from corral.netproxy.policy import LocalGrant

    for text in ("a.test:²", "a.test:١٢"):
        with pytest.raises(HttpError):
            split_authority(text, None)
        with pytest.raises(CorralError):
            LocalGrant.parse(text, "test")
