"""A local, standards-compliant OpenID Connect issuer for the fleet tests.

Built on authlib's server components (``AuthorizationServer``, RFC 8628's
``DeviceAuthorizationEndpoint`` and ``DeviceCodeGrant``, OpenID Connect's ``OpenIDToken``
extension, RFC 6749's ``RefreshTokenGrant``) behind a Starlette app on uvicorn, on 127.0.0.1
and a free port. It serves discovery (``/.well-known/openid-configuration``), device
authorization (``/device``), the token endpoint (``/token``), the JWKS (``/jwks``) and a
verification page (``POST /activate``: what the user's browser would submit, naming the user
who approves the code). ID tokens are RS256-signed by a key generated per issuer.
"""

from __future__ import annotations

import asyncio
import secrets
import socket
import threading
import time
from typing import Any, ClassVar
from urllib.parse import parse_qsl

import uvicorn
from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Request
from authlib.oauth2.rfc6749.grants import RefreshTokenGrant
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc6750 import BearerTokenGenerator
from authlib.oauth2.rfc8628 import (
    DeviceAuthorizationEndpoint,
    DeviceCodeGrant,
    DeviceCredentialDict,
)
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDToken
from joserfc.jwk import RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


class Client(ClientMixin):
    def __init__(self, client_id: str) -> None:
        self.client_id = client_id

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str:
        return ""

    def get_allowed_scope(self, scope: str) -> str:
        allowed = {"openid", "profile", "email", "offline_access"}
        return " ".join(s for s in (scope or "").split() if s in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return False

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return False

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (DeviceCodeGrant.GRANT_TYPE, "refresh_token")


class _Req(OAuth2Request):
    def __init__(self, method: str, uri: str, headers: dict[str, str],
                 form: dict[str, str]) -> None:
        super().__init__(method, uri, headers=headers)
        self.payload = BasicOAuth2Payload(form)
        self._form = form

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._form


class Issuer:
    """Start with ``Issuer(client_id).start()``; ``url`` is the issuer identifier."""

    def __init__(self, client_id: str = "corral-cli", token_ttl: int = 3600) -> None:
        self.client_id = client_id
        self.token_ttl = token_ttl
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig",
                                                         "alg": "RS256"})
        self.users: dict[str, dict[str, Any]] = {}
        self.devices: dict[str, dict[str, Any]] = {}  # device_code -> credential data
        self.grants: dict[str, tuple[dict[str, Any], bool]] = {}  # user_code -> (user, ok)
        self.refresh: dict[str, tuple[dict[str, Any], str]] = {}  # refresh token -> user
        self.token_requests = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.auth = self._authorization_server()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add_user(self, username: str, **claims: Any) -> None:
        self.users[username] = {"sub": f"user-{username}", **claims}

    # -- authlib wiring -------------------------------------------------------------------
    def _authorization_server(self) -> AuthorizationServer:
        issuer = self

        class Server(AuthorizationServer):  # type: ignore[misc]
            def query_client(self, client_id: str) -> Client | None:
                return Client(client_id) if client_id == issuer.client_id else None

            def save_token(self, token: dict[str, Any], request: Any) -> None:
                if token.get("refresh_token") and request.user:
                    issuer.refresh[token["refresh_token"]] = (request.user, token["scope"])

            def create_oauth2_request(self, request: Any) -> Any:
                return request

            def create_json_request(self, request: Any) -> Any:
                return request

            def handle_response(self, status: int, body: Any, headers: Any) -> Response:
                return JSONResponse(body, status_code=status, headers=dict(headers or []))

            def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
                return None

        class DeviceEndpoint(DeviceAuthorizationEndpoint):  # type: ignore[misc]
            INTERVAL = 1  # seconds between polls (RFC 8628 default 5: slow tests)

            def get_verification_uri(self) -> str:
                return issuer.url + "/activate"

            def save_device_credential(self, client_id: str, scope: str,
                                       data: dict[str, Any]) -> None:
                issuer.devices[data["device_code"]] = {
                    "client_id": client_id, "scope": scope, **data,
                    "expires_at": int(time.time()) + data["expires_in"]}

        class DeviceGrant(DeviceCodeGrant):  # type: ignore[misc]
            def query_device_credential(self, device_code: str) -> Any:
                data = issuer.devices.get(device_code)
                return DeviceCredentialDict(data) if data else None

            def query_user_grant(self, user_code: str) -> Any:
                return issuer.grants.get(user_code)

            def should_slow_down(self, credential: Any) -> bool:
                return False

        class Refresh(RefreshTokenGrant):  # type: ignore[misc]
            INCLUDE_NEW_REFRESH_TOKEN = True
            TOKEN_ENDPOINT_AUTH_METHODS: ClassVar[list[str]] = ["none"]

            def authenticate_refresh_token(self, refresh_token: str) -> Any:
                found = issuer.refresh.get(refresh_token)
                if not found:
                    return None
                user, scope = found

                class Tok:
                    def check_client(self, client: Any) -> bool:
                        return True

                    def get_scope(self) -> str:
                        return scope

                    def get_expires_in(self) -> int:
                        return 3600

                    def is_expired(self) -> bool:
                        return False

                    def is_revoked(self) -> bool:
                        return False

                    def get_user(self) -> Any:
                        return user

                return Tok()

            def authenticate_user(self, refresh_token: Any) -> Any:
                return refresh_token.get_user()

            def revoke_old_credential(self, refresh_token: Any) -> None:
                return None

        class IdToken(OpenIDToken):  # type: ignore[misc]
            def resolve_client_private_key(self, client: Any) -> Any:
                return issuer.key

            def get_client_algorithm(self, client: Any) -> str:
                return "RS256"

            def get_encode_header(self, client: Any) -> dict[str, str]:
                return {"alg": "RS256", "kid": "k1"}

            def get_client_claims(self, client: Any) -> dict[str, Any]:
                now = int(time.time())
                return {"iss": issuer.url, "aud": [client.get_client_id()],
                        "exp": now + issuer.token_ttl, "iat": now}

            def generate_user_info(self, user: dict[str, Any], scope: str) -> UserInfo:
                return UserInfo(**user)

            def process_token(self, grant: Any, response: Any) -> Any:
                if grant.request.user is None and isinstance(grant, Refresh):
                    grant.request.user = issuer.refresh.get(
                        grant.request.payload.data.get("refresh_token"), ({}, ""))[0]
                return super().process_token(grant, response)

        srv = Server()
        srv.register_token_generator("default", BearerTokenGenerator(
            access_token_generator=lambda *a, **k: secrets.token_urlsafe(24),
            refresh_token_generator=lambda *a, **k: secrets.token_urlsafe(24),
            expires_generator=lambda *a, **k: 3600))
        srv.register_endpoint(DeviceEndpoint)
        srv.register_grant(DeviceGrant, [IdToken()])
        srv.register_grant(Refresh, [IdToken()])
        return srv

    # -- HTTP -------------------------------------------------------------------------------
    async def _form(self, request: Request) -> _Req:
        body = (await request.body()).decode()
        return _Req(request.method, str(request.url), dict(request.headers),
                    dict(parse_qsl(body)))

    async def discovery(self, request: Request) -> Response:
        return JSONResponse({
            "issuer": self.url, "device_authorization_endpoint": self.url + "/device",
            "token_endpoint": self.url + "/token", "jwks_uri": self.url + "/jwks",
            "response_types_supported": ["code"], "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "grant_types_supported": [DeviceCodeGrant.GRANT_TYPE, "refresh_token"],
            "token_endpoint_auth_methods_supported": ["none"]})

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def device(self, request: Request) -> Response:
        req = await self._form(request)
        resp: Response = self.auth.create_endpoint_response("device_authorization", req)
        return resp

    async def token(self, request: Request) -> Response:
        self.token_requests += 1
        req = await self._form(request)
        resp: Response = self.auth.create_token_response(req)
        return resp

    async def activate(self, request: Request) -> Response:
        """What the browser posts: the code shown by the device, and who approves it."""
        form = dict(parse_qsl((await request.body()).decode()))
        user = self.users.get(form.get("username", ""))
        code = form.get("user_code", "")
        if user is None or not any(d["user_code"] == code for d in self.devices.values()):
            return PlainTextResponse("unknown user or code", status_code=400)
        self.grants[code] = (user, form.get("action", "approve") == "approve")
        return PlainTextResponse("approved")

    def start(self) -> Issuer:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        app = Starlette(routes=[
            Route("/.well-known/openid-configuration", self.discovery),
            Route("/jwks", self.jwks), Route("/device", self.device, methods=["POST"]),
            Route("/token", self.token, methods=["POST"]),
            Route("/activate", self.activate, methods=["POST"])])
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))

        def serve() -> None:
            assert self._server is not None
            asyncio.run(self._server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            assert time.monotonic() < deadline, "the issuer did not start"
            time.sleep(0.02)
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
