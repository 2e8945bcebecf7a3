"""The TLS context a server URL needs, apart from the HTTP client: the background forwarder
makes it while its session is still deciding (``corral.forward.background``), without
importing ``http.client``."""

from __future__ import annotations

import ssl
from urllib.parse import urlsplit


def tls_for(url: str, ca_file: str | None) -> ssl.SSLContext | None:
    """The TLS context for ``url``: the system's trust store, or ``ca_file`` alone when it is
    set; None for plain http (loopback only, ``settings.normalize_url``), which never uses one.
    Loading the system store is ~20 ms here (OpenSSL 3 parsing ~140 certificates), and lets go
    of the interpreter lock meanwhile. Raises OSError or ssl.SSLError for an unusable
    ``ca_file``."""
    if urlsplit(url).scheme != "https":
        return None
    return ssl.create_default_context(cafile=ca_file)
