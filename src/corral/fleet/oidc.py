"""Signing in: the OAuth 2.0 device authorization grant (RFC 8628) against the organisation's
OpenID Connect issuer, through authlib (its httpx client); ID tokens verified with joserfc.

The issuer and client come from the server (``[oidc]`` in the server's ``fleet.toml``, handed
over at enrolment, or ``GET /v1/fleet/identity``). ``login`` discovers the issuer
(``/.well-known/openid-configuration``, whose ``issuer`` must be the configured one), asks for a
device code, shows the user where to approve it, polls the token endpoint (honouring
``interval`` and ``slow_down``), and verifies the ID token: signature by a key of the issuer's
JWKS, ``iss``, ``aud`` (and ``azp`` with several audiences), ``exp``, ``iat``. The tokens go to
the OS keyring (``corral.credentials``); ``identity.json`` keeps who signed in, and
``jwks.json`` the issuer's public keys, so a later check needs no network until the ID token
expires (then the refresh token is used, once).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral import credentials
from corral.config.enrolment import (
    IDENTITY_SERVICE,
    Identity,
    fleet_dir,
    identity_file,
    read_enrolment,
    read_identity,
    write_record,
)
from corral.errors import CorralError
from corral.fleet.http import json_answer

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
DEFAULT_SCOPE = "openid profile email offline_access"
DEFAULT_CLAIM = "org_id"
LEEWAY = 60  # seconds of clock skew allowed on exp/iat
ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "PS256", "EdDSA"]


class LoginError(CorralError):
    exit_code = 1


def _err(message: str, hint: str | None = None, control: str = "login") -> LoginError:
    return LoginError(control, message, hint)


@dataclass(frozen=True)
class Provider:
    issuer: str
    client_id: str
    workspace_claim: str
    scope: str
    device_endpoint: str
    token_endpoint: str
    jwks_uri: str


def jwks_file(home: Path) -> Path:
    return fleet_dir(home) / "jwks.json"


def _client(provider_client_id: str, ca_file: str | None, scope: str | None = None) -> Any:
    import ssl

    from authlib.integrations.httpx_client import OAuth2Client

    tls = ssl.create_default_context(cafile=ca_file)
    return OAuth2Client(client_id=provider_client_id, scope=scope,
                        token_endpoint_auth_method="none", verify=tls, timeout=15.0)


def _get_json(client: Any, url: str, what: str) -> dict[str, Any]:
    try:
        r = client.request("GET", url, headers={"Accept": "application/json"},
                           withhold_token=True)
    except Exception as exc:
        raise _err(f"cannot fetch {what} from {url}: {exc}") from exc
    return json_answer(r, f"{what} at {url}", _err)


def settings(cfg: Any, home: Path, server: str | None, ca_file: str | None) -> dict[str, str]:
    """The identity provider: from the enrolment, or asked of ``server``."""
    enr = read_enrolment(home)
    if server is None and enr is not None and enr.oidc:
        return dict(enr.oidc)
    url = server or (enr.server if enr else None)
    if not url:
        raise _err("this machine is not enrolled and no --server was given",
                   hint="corral enroll --server URL, or corral login --server URL")
    from corral.forward.settings import normalize_url

    url = normalize_url(url)
    with _client("corral", ca_file or (enr.ca_file if enr else None)) as c:
        doc = _get_json(c, url + "/v1/fleet/identity", "the server's identity settings")
    oidc = doc.get("oidc")
    if not isinstance(oidc, dict) or not oidc.get("issuer") or not oidc.get("client_id"):
        raise _err(f"{url} has no identity provider configured",
                   hint="the administrator sets [oidc] issuer and client_id in the server's "
                   "fleet.toml")
    return {str(k): str(v) for k, v in oidc.items()}


def discover(client: Any, oidc: dict[str, str]) -> Provider:
    issuer = oidc["issuer"].rstrip("/")
    doc = _get_json(client, issuer + "/.well-known/openid-configuration",
                    "OpenID Connect discovery")
    if str(doc.get("issuer", "")).rstrip("/") != issuer:
        raise _err(f"discovery at {issuer} names issuer {doc.get('issuer')!r}: not the "
                   "configured one")
    for key in ("device_authorization_endpoint", "token_endpoint", "jwks_uri"):
        if not isinstance(doc.get(key), str):
            raise _err(f"issuer {issuer} does not offer {key} (the device authorization grant "
                       "needs it)")
    return Provider(doc["issuer"], oidc["client_id"],
                    oidc.get("workspace_claim") or DEFAULT_CLAIM,
                    oidc.get("scope") or DEFAULT_SCOPE, doc["device_authorization_endpoint"],
                    doc["token_endpoint"], doc["jwks_uri"])


def verify_id_token(id_token: str, jwks: dict[str, Any], issuer: str, client_id: str,
                    now: float | None = None) -> dict[str, Any]:
    """The ID token's claims, or LoginError naming what failed (signature, iss, aud, exp)."""
    from joserfc import jwt
    from joserfc.errors import JoseError
    from joserfc.jwk import KeySet

    try:
        keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
        tok = jwt.decode(id_token, keys, algorithms=ALGORITHMS)
    except (JoseError, ValueError, TypeError) as exc:
        raise _err(f"ID token signature not valid under the issuer's keys ({exc})") from None
    claims = dict(tok.claims)
    reg = jwt.JWTClaimsRegistry(
        now=int(now if now is not None else time.time()), leeway=LEEWAY,
        iss={"essential": True, "value": issuer}, aud={"essential": True, "value": client_id},
        exp={"essential": True}, iat={"essential": True}, sub={"essential": True})
    try:
        reg.validate(claims)
    except JoseError as exc:
        raise _err(f"ID token refused: {exc.description or exc.error} "
                   f"(iss {claims.get('iss')!r}, aud {claims.get('aud')!r})") from None
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise _err("ID token has several audiences and azp is not this client")
    return claims


def _identity(p: Provider, claims: dict[str, Any]) -> Identity:
    ws = claims.get(p.workspace_claim)
    return Identity(method="oidc", issuer=p.issuer, client_id=p.client_id,
                    subject=str(claims["sub"]), email=str(claims.get("email") or ""),
                    name=str(claims.get("name") or ""),
                    workspace="" if ws is None else str(ws),
                    workspace_claim=p.workspace_claim, expires_at=int(claims["exp"]),
                    signed_in_at=int(time.time()))


def login(cfg: Any, home: Path, server: str | None = None, ca_file: str | None = None,
          show: Callable[[str], None] = print, check: Callable[[Identity], None] | None = None
          ) -> tuple[Identity, str]:
    """Run the device flow; (identity, where the tokens went). ``check`` may refuse the
    identity (the forced workspace) before anything is stored."""
    from authlib.integrations.base_client import OAuthError

    oidc = settings(cfg, home, server, ca_file)
    enr = read_enrolment(home)
    ca = ca_file or (enr.ca_file if enr else None)
    with _client(oidc["client_id"], ca) as c:
        p = discover(c, oidc)
        try:
            r = c.request("POST", p.device_endpoint, withhold_token=True,
                          data={"client_id": p.client_id, "scope": p.scope})
        except Exception as exc:
            raise _err(f"device authorization request failed: {exc}") from exc
        if r.status_code != 200:
            raise _err(f"device authorization refused: HTTP {r.status_code} "
                       f"{' '.join(r.text.split())[:200]}")
        da = r.json()
        for key in ("device_code", "user_code", "verification_uri"):
            if not isinstance(da.get(key), str):
                raise _err(f"device authorization answer lacks {key}")
        show(f"To sign in, open {da['verification_uri']} and enter the code {da['user_code']}")
        if da.get("verification_uri_complete"):
            show(f"  (or open {da['verification_uri_complete']})")
        interval = float(da.get("interval") or 5)
        deadline = time.monotonic() + float(da.get("expires_in") or 600)
        token: dict[str, Any] | None = None
        while token is None:
            if time.monotonic() > deadline:
                raise _err("the device code expired before the sign-in was approved")
            try:
                token = dict(c.fetch_token(p.token_endpoint, grant_type=DEVICE_GRANT,
                                           device_code=da["device_code"]))
            except OAuthError as exc:
                if exc.error == "authorization_pending":
                    time.sleep(interval)
                elif exc.error == "slow_down":
                    interval += 5
                    time.sleep(interval)
                else:
                    raise _err(f"sign-in refused by the issuer: {exc.error}"
                               + (f" ({exc.description})" if exc.description else "")) from None
        jwks = _get_json(c, p.jwks_uri, "the issuer's keys (JWKS)")
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise _err("the issuer answered without an ID token (is the openid scope allowed?)")
    ident = _identity(p, verify_id_token(id_token, jwks, p.issuer, p.client_id))
    if check is not None:
        check(ident)
    secret = json.dumps({"id_token": id_token, "refresh_token": token.get("refresh_token"),
                         "token_endpoint": p.token_endpoint, "jwks_uri": p.jwks_uri})
    where = credentials.put(cfg, home, IDENTITY_SERVICE, p.issuer, secret, "login")
    jf = jwks_file(home)
    jf.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    jf.write_text(json.dumps(jwks))
    write_record(identity_file(home), ident)
    return ident, where


def logout(cfg: Any, home: Path) -> Identity | None:
    """Forget the sign-in (tokens, identity record); the identity that was signed in."""
    ident = read_identity(home)
    if ident is not None:
        credentials.delete(cfg, home, IDENTITY_SERVICE, ident.issuer, "logout")
    for f in (identity_file(home), jwks_file(home)):
        f.unlink(missing_ok=True)
    return ident


def current(cfg: Any, home: Path, *, refresh: bool = True) -> Identity:
    """The signed-in identity, its ID token verified again now (signature, iss, aud, exp);
    an expired one is refreshed once with the refresh token. LoginError when there is none
    or it does not verify."""
    ident = read_identity(home)
    if ident is None:
        raise _err("not signed in", hint="corral login")
    raw, _ = credentials.get(cfg, home, IDENTITY_SERVICE, ident.issuer, "login")
    if not raw:
        raise _err(f"signed in as {ident.display}, but the tokens are gone from the "
                   "credential store", hint="corral login")
    try:
        secret = json.loads(raw)
        jwks = json.loads(jwks_file(home).read_text())
    except (OSError, ValueError):
        raise _err("the stored sign-in is unreadable", hint="corral login") from None
    try:
        claims = verify_id_token(secret["id_token"], jwks, ident.issuer, ident.client_id)
    except LoginError:
        if not (refresh and secret.get("refresh_token")):
            raise _err(f"the sign-in of {ident.display} has expired or does not verify",
                       hint="corral login") from None
        claims, secret = _refresh(cfg, home, ident, secret)
    p = Provider(ident.issuer, ident.client_id, ident.workspace_claim, "", "",
                 str(secret.get("token_endpoint", "")), str(secret.get("jwks_uri", "")))
    fresh = _identity(p, claims)
    if fresh.expires_at != ident.expires_at:
        write_record(identity_file(home), fresh)
    return fresh


def _refresh(cfg: Any, home: Path, ident: Identity, secret: dict[str, Any]
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    from authlib.integrations.base_client import OAuthError

    enr = read_enrolment(home)
    try:
        with _client(ident.client_id, enr.ca_file if enr else None) as c:
            token = dict(c.refresh_token(secret["token_endpoint"],
                                         refresh_token=secret["refresh_token"]))
            jwks = _get_json(c, secret["jwks_uri"], "the issuer's keys (JWKS)")
    except (OAuthError, KeyError) as exc:
        raise _err(f"the sign-in of {ident.display} expired and could not be refreshed "
                   f"({exc})", hint="corral login") from None
    except LoginError:
        raise
    except Exception as exc:
        raise _err(f"the sign-in of {ident.display} expired; the issuer is unreachable "
                   f"({exc})", hint="corral login") from None
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise _err("the refreshed sign-in has no ID token", hint="corral login")
    claims = verify_id_token(id_token, jwks, ident.issuer, ident.client_id)
    if str(claims["sub"]) != ident.subject:
        raise _err("the refreshed sign-in is for another user", hint="corral login")
    secret = {**secret, "id_token": id_token,
              "refresh_token": token.get("refresh_token") or secret.get("refresh_token")}
    credentials.put(cfg, home, IDENTITY_SERVICE, ident.issuer, json.dumps(secret), "login")
    jwks_file(home).write_text(json.dumps(jwks))
    return claims, secret
