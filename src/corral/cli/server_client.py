"""One request to ``corral server`` for the analyst's commands (``corral triage --server``,
``corral stats --server``): the URL rules and the token of ``corral login`` / the forwarder
(``CORRAL_SERVER_TOKEN``, else the OS keyring entry for that URL), TLS with ``server.ca_file``.
Every failure is one line in the caller's area."""

from __future__ import annotations

from typing import Any

from corral.errors import CorralError


def request(cfg: Any, area: str, url: str, method: str, path: str, *,
            params: dict[str, str] | None = None, body: bytes | None = None,
            timeout: float = 120.0) -> Any:
    """The JSON answer of ``method url+path``, or a ``CorralError`` naming what went wrong."""
    import ssl

    import httpx

    from corral.forward.settings import resolve
    from corral.paths import corral_home

    try:
        settings = resolve(cfg, corral_home(), url)
        tls = ssl.create_default_context(cafile=settings.ca_file)
    except CorralError as exc:
        raise CorralError(area, exc.message, exc.hint) from None
    except (OSError, ssl.SSLError) as exc:
        raise CorralError(area, f"server.ca_file is unusable: {exc}") from None
    headers = {"Authorization": f"Bearer {settings.token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    try:
        with httpx.Client(verify=tls, timeout=httpx.Timeout(timeout, connect=10.0)) as client:
            resp = client.request(method, settings.url + path, params=params, content=body,
                                  headers=headers)
    except httpx.HTTPError as exc:
        raise CorralError(area, f"cannot reach {settings.url}: {exc}") from None
    try:
        doc = resp.json()
    except ValueError:
        doc = None
    if resp.status_code != 200:
        line = doc.get("error") if isinstance(doc, dict) else None
        line = str(line or resp.text.strip().splitlines()[0] if resp.text.strip() else
                   resp.reason_phrase)
        if line.startswith("corral: "):
            line = line[len("corral: "):]
        raise CorralError(area, f"{settings.url} answered {resp.status_code}: {line[:300]}")
    if doc is None:
        raise CorralError(area, f"{settings.url} did not answer JSON (is it a corral server?)")
    return doc
