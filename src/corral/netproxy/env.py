"""Environment that points every common client at the proxy (and, with MITM, at its CA)."""

from __future__ import annotations

NO_PROXY = "localhost,127.0.0.1,::1"

_HTTP_VARS = (
    "HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy",
    "WS_PROXY", "WSS_PROXY", "ws_proxy", "wss_proxy",
    "npm_config_proxy", "npm_config_https_proxy", "NPM_CONFIG_PROXY", "NPM_CONFIG_HTTPS_PROXY",
    "YARN_HTTP_PROXY", "YARN_HTTPS_PROXY", "yarn_http_proxy", "yarn_https_proxy",
    "BUNDLE_HTTP_PROXY", "BUNDLE_HTTPS_PROXY", "PIP_PROXY", "DOCKER_HTTP_PROXY",
    "DOCKER_HTTPS_PROXY", "GLOBAL_AGENT_HTTP_PROXY",
)
_ALL_VARS = ("ALL_PROXY", "all_proxy", "FTP_PROXY", "ftp_proxy")
_NO_VARS = ("NO_PROXY", "no_proxy", "npm_config_noproxy", "NPM_CONFIG_NOPROXY",
            "YARN_NO_PROXY", "GLOBAL_AGENT_NO_PROXY")
CA_VARS = (
    "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NODE_EXTRA_CA_CERTS",
    "GIT_SSL_CAINFO", "PIP_CERT", "BUNDLE_SSL_CA_CERT", "npm_config_cafile",
    "NPM_CONFIG_CAFILE", "YARN_CA_FILE_PATH", "CORRAL_PROXY_CA",
)


def proxy_env(
    http_port: int,
    socks_port: int | None = None,
    *,
    host: str = "127.0.0.1",
    credentials: tuple[str, str] | None = None,
    ca_bundle: str | None = None,
    no_proxy: str = NO_PROXY,
    socks_all_proxy: bool = False,
) -> dict[str, str]:
    """Variables for a child process. HTTP(S) and ALL_PROXY go to the HTTP port.

    ALL_PROXY points at SOCKS only with ``socks_all_proxy=True``: Python clients without SOCKS
    support (httpx without socksio, pip) fail outright when ALL_PROXY is a socks URL, even for
    plain HTTP. The SOCKS endpoint (socks5h, names resolved by the proxy) is always published as
    CORRAL_SOCKS_PROXY for tools that need raw TCP (e.g. ``git`` over ssh via ``nc -X 5``).
    git over http(s) uses ``http_proxy``/``HTTPS_PROXY`` (through libcurl), so needs nothing more.

    ``no_proxy`` defaults to loopback only: inside the sandbox nothing else is reachable directly,
    and private ranges must go through the proxy so that they are refused there.
    """
    auth = f"{credentials[0]}:{credentials[1]}@" if credentials else ""
    http_url = f"http://{auth}{host}:{http_port}"
    socks_url = f"socks5h://{auth}{host}:{socks_port}" if socks_port else None
    all_url = socks_url if socks_url and socks_all_proxy else http_url
    env = dict.fromkeys(_HTTP_VARS, http_url)
    env.update(dict.fromkeys(_ALL_VARS, all_url))
    env.update(dict.fromkeys(_NO_VARS, no_proxy))
    env["NODE_USE_ENV_PROXY"] = "1"
    env["ELECTRON_GET_USE_PROXY"] = "true"
    env["GLOBAL_AGENT_FORCE_GLOBAL_AGENT"] = "true"
    env["CORRAL_NETWORK_PROXY_ACTIVE"] = "1"
    if socks_url:
        env["CORRAL_SOCKS_PROXY"] = socks_url
    if ca_bundle:
        env.update(dict.fromkeys(CA_VARS, ca_bundle))
    return env
