"""One keep-alive HTTP(S) connection to the server, on the standard library's ``http.client``.

Not httpx: importing it cost every forwarded ``corral exec`` ~160 ms more CPU than
``http.client`` + ``ssl`` (benchmarks/bench_fleet.py), paid on the forwarder thread beside the
command. What httpx gave the forwarder is kept: the proxy variables (``HTTPS_PROXY``,
``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``; an ``http://`` proxy, with CONNECT for an https
server), separate connect and read timeouts, and one fresh-connection retry when a kept-alive
connection turns out to be closed by the server before it answered.
"""

from __future__ import annotations

import base64
import http.client
import os
import ssl
from collections.abc import Mapping
from urllib.parse import unquote, urlsplit

_PROXY_VARS = ("https_proxy", "http_proxy", "all_proxy")


class TransportError(Exception):
    """The server could not be reached or did not speak HTTP; ``broken`` for the latter."""

    def __init__(self, message: str, broken: bool = False, stale: bool = False) -> None:
        super().__init__(message)
        self.broken = broken
        self.stale = stale  # the peer closed the connection: a kept-alive one may be retried


class ProxyRefused(Exception):
    """A proxy setting that cannot be used (not ``http://``): refused, never bypassed."""


def proxy_for(url: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy URL the environment names for ``url`` (curl's and httpx's variables; the
    lower-case one first), or None (none set, or ``NO_PROXY`` covers the host)."""
    env = os.environ if environ is None else environ
    scheme = urlsplit(url).scheme
    names = (f"{scheme}_proxy", "all_proxy")
    value = next((v for n in names for v in (env.get(n), env.get(n.upper())) if v), None)
    if not value:
        return None
    from urllib.request import (  # type: ignore[attr-defined]  # only when a proxy is set
        proxy_bypass_environment,
    )

    host = urlsplit(url).hostname or ""
    no_proxy = {"no": env.get("no_proxy") or env.get("NO_PROXY") or ""}
    if no_proxy["no"] and proxy_bypass_environment(host, no_proxy):
        return None
    return value


class Connection:
    """POSTs to one server URL over one kept-alive connection (reopened after any error).
    ``tls`` is the context for an https URL (None: the system's trust store); an http URL
    does not use it."""

    def __init__(self, url: str, tls: ssl.SSLContext | None, headers: Mapping[str, str],
                 connect_timeout: float, read_timeout: float,
                 environ: Mapping[str, str] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._netloc = parts.netloc.rsplit("@", 1)[-1]
        self._tls = tls if tls is not None else (ssl.create_default_context()
                                                 if self._https else None)
        self._headers = dict(headers)
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._proxy = self._proxy_settings(url, environ)
        self._conn: http.client.HTTPConnection | None = None

    def _proxy_settings(self, url: str, environ: Mapping[str, str] | None
                        ) -> tuple[str, int, dict[str, str]] | None:
        raw = proxy_for(url, environ)
        if raw is None:
            return None
        p = urlsplit(raw if "://" in raw else "http://" + raw)
        if p.scheme != "http" or not p.hostname:
            raise ProxyRefused(f"proxy {p.scheme}://{p.hostname or ''} from the environment "
                               "is not an http:// proxy, the only kind the forwarder uses")
        auth: dict[str, str] = {}
        if p.username is not None:
            cred = f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
            auth["Proxy-Authorization"] = "Basic " + base64.b64encode(cred).decode("ascii")
        return p.hostname, p.port or 80, auth

    def _connect(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection
        if self._proxy is not None:
            phost, pport, auth = self._proxy
            if self._https:
                conn = http.client.HTTPSConnection(phost, pport, timeout=self._connect_timeout,
                                                   context=self._tls)
                conn.set_tunnel(self._host, self._port, headers=auth)
            else:  # absolute-form requests to the proxy
                conn = http.client.HTTPConnection(phost, pport, timeout=self._connect_timeout)
        elif self._https:
            conn = http.client.HTTPSConnection(self._host, self._port,
                                               timeout=self._connect_timeout, context=self._tls)
        else:
            conn = http.client.HTTPConnection(self._host, self._port,
                                              timeout=self._connect_timeout)
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(self._read_timeout)
        return conn

    def post(self, body: bytes, limit: int) -> tuple[int, Mapping[str, str], bytes]:
        """(status, headers with lower-case names, at most ``limit + 1`` bytes of the body).
        Raises TransportError; the connection is closed after any error."""
        reused = self._conn is not None
        try:
            return self._post_once(body, limit)
        except TransportError as exc:
            self.close()
            if not (reused and exc.stale):
                raise
        try:  # a kept-alive connection the server had closed: once more on a new one
            return self._post_once(body, limit)
        except TransportError:
            self.close()
            raise

    def _post_once(self, body: bytes, limit: int) -> tuple[int, Mapping[str, str], bytes]:
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            target = self._target
            headers = dict(self._headers)
            if self._proxy is not None and not self._https:
                target = f"http://{self._netloc}{self._target}"
                headers.update(self._proxy[2])
            headers["Host"] = self._netloc
            conn.request("POST", target, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read(limit + 1)
            if len(data) > limit or resp.will_close:
                self.close()  # the rest is not read: the connection cannot be used again
            else:
                resp.read()  # the (empty) rest, so the connection can carry the next request
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            raise TransportError("the server closed the connection without answering",
                                 broken=isinstance(exc, http.client.RemoteDisconnected),
                                 stale=True) from exc
        except http.client.HTTPException as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}", broken=True) from exc
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(str(exc) or type(exc).__name__) from exc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
