"""What the credential broker holds: the agents' presets and ``[secrets.broker]`` in config.

Plain data: ``specs(cfg, agent)`` says which credentials to broker, where each one's secret is
read (an environment variable of corral's own process, or the OS keyring) and how the sandbox
presents its placeholder (``sandbox_env``). Reading the secrets is the supervisor's edge
(``corral.supervisor.network``); nothing here touches the environment or the keyring.

```toml
[secrets.broker]
enabled = true                      # default: corral run brokers the agent's own key
upstream_ca_file = "/etc/corp/ca.pem"   # extra trust for the real servers (optional)

[secrets.broker.credentials.openai]     # a preset's credential: only its hosts change
hosts = ["llm-gateway.corp.example"]

[secrets.broker.credentials.github]
kind = "git"                        # git over https: a credential helper inside
hosts = ["github.com"]
source = "keyring:corral-broker/github"
username = "x-access-token"
```
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from corral.errors import CorralError
from corral.paths import GEMINI_HOME_ENV, moved_config_dir

KINDS = ("api_key", "git", "npm", "pip")
KEYRING_SERVICE = "corral-broker"
CA_INSIDE = "/dev/corral/ca.pem"  # where the sandbox finds corral's CA bundle


@dataclass(frozen=True)
class CredentialSpec:
    """One credential to broker. ``source`` is ``("env", NAME)`` or ``("keyring",
    "SERVICE/USER")``; ``env`` names the variables that carry the placeholder inside."""

    name: str
    kind: str
    hosts: tuple[str, ...]
    source: tuple[str, str]
    env: tuple[str, ...] = ()
    username: str = ""
    index_url: str = ""
    preset: str = ""  # the agent preset it comes from ("" for config)
    origin: str = ""  # where it was configured (for messages)
    model: bool = False  # the agent sends it to its model URL (which must be one of hosts)

    @property
    def key(self) -> str:
        return f"secrets.broker.credentials.{self.name}"


def _api(name: str, var: str, hosts: tuple[str, ...], agent: str) -> CredentialSpec:
    return CredentialSpec(name, "api_key", hosts, ("env", var), (var,), preset=agent,
                          origin=f"the {agent} preset", model=True)


@dataclass(frozen=True)
class LoginFile:
    """An agent's login file (JSON) in its config dir: the string fields that are credentials
    get placeholders in a copy the sandbox sees instead; ``signed`` fields (JWT identity
    tokens the agent only decodes) keep header and claims but lose their signature."""

    agent: str
    config_dir: str
    config_env: str
    name: str
    fields: tuple[tuple[tuple[str, ...], str, tuple[str, ...], bool], ...]  # path, cred, hosts, model
    signed: tuple[tuple[str, ...], ...] = ()
    config_subdir: str | None = None  # the config dir inside what ``config_env`` names

    def path(self, environ: Mapping[str, str]) -> Path:
        """Where the agent reads it: in the dir ``config_env`` moves, else ``config_dir``."""
        moved = moved_config_dir(self.config_env, self.config_subdir, environ)
        return (moved or Path(os.path.abspath(os.path.expanduser(self.config_dir)))) / self.name

    def spec(self, path: tuple[str, ...], cred: str, hosts: tuple[str, ...],
             model: bool) -> CredentialSpec:
        return CredentialSpec(cred, "api_key", hosts, ("file", f"{self.name}:{'.'.join(path)}"),
                              preset=self.agent, origin=f"the {self.agent} login file",
                              model=model)


_OPENAI = ("api.openai.com",)
_ANTHROPIC = ("api.anthropic.com",)
_GOOGLE = ("generativelanguage.googleapis.com",)

# The agents' own credentials, brokered when corral's environment holds them.
AGENT_PRESETS: dict[str, tuple[CredentialSpec, ...]] = {
    "codex": (_api("openai", "OPENAI_API_KEY", _OPENAI, "codex"),
              _api("codex-api-key", "CODEX_API_KEY", _OPENAI, "codex")),
    "claude-code": (_api("anthropic", "ANTHROPIC_API_KEY", _ANTHROPIC, "claude-code"),
                    _api("anthropic-auth-token", "ANTHROPIC_AUTH_TOKEN", _ANTHROPIC,
                         "claude-code"),
                    _api("claude-oauth-token", "CLAUDE_CODE_OAUTH_TOKEN", _ANTHROPIC,
                         "claude-code")),
    "gemini": (_api("gemini", "GEMINI_API_KEY", _GOOGLE, "gemini"),
               _api("google", "GOOGLE_API_KEY", _GOOGLE, "gemini")),
}


# Logins kept in files (ChatGPT for Codex, Claude Code's OAuth, Gemini's Google login).
LOGIN_FILES: dict[str, LoginFile] = {
    "codex": LoginFile("codex", "~/.codex", "CODEX_HOME", "auth.json", (
        (("OPENAI_API_KEY",), "openai-login", _OPENAI, True),
        (("tokens", "access_token"), "chatgpt", ("chatgpt.com", *_OPENAI), True),
        (("tokens", "refresh_token"), "chatgpt-refresh", ("auth.openai.com",), False)),
        signed=(("tokens", "id_token"),)),
    "claude-code": LoginFile("claude-code", "~/.claude", "CLAUDE_CONFIG_DIR",
                             ".credentials.json", (
        (("claudeAiOauth", "accessToken"), "claude-login", _ANTHROPIC, True),
        (("claudeAiOauth", "refreshToken"), "claude-login-refresh", ("console.anthropic.com",),
         False))),
    "gemini": LoginFile("gemini", "~/.gemini", GEMINI_HOME_ENV, "oauth_creds.json", (
        (("access_token",), "gemini-login", ("cloudcode-pa.googleapis.com", *_GOOGLE), True),
        (("refresh_token",), "gemini-login-refresh", ("oauth2.googleapis.com",), False)),
        signed=(("id_token",),), config_subdir=".gemini"),
}


def enabled(cfg: Any) -> bool:
    """``secrets.broker.enabled`` (default true); requirements may force it on."""
    if bool(cfg.requirements.get("secrets.broker.required", False)):
        return True
    return bool(cfg.get("secrets.broker.enabled", True))


def required(cfg: Any) -> str | None:
    """The requirements source that forces the broker on, if any."""
    if bool(cfg.requirements.get("secrets.broker.required", False)):
        return str(cfg.requirements.source_of("secrets.broker.required"))
    return None


def off_model_urls(spec: CredentialSpec, model_urls: Sequence[tuple[str, str]]
                   ) -> list[tuple[str, str]]:
    """The agent's model URLs (url, where configured) that keep ``spec`` from being brokered:
    the agent sends that key to its model, so each must be https to one of its hosts."""
    if not spec.model:
        return []
    from corral.netproxy.broker import Destination

    dests = [Destination.parse(h) for h in spec.hosts]
    off = []
    for url, where in model_urls:
        try:
            parts = urlsplit(url)
            host, port = (parts.hostname or "").lower(), parts.port or 443
        except ValueError:
            off.append((url, where))
            continue
        if parts.scheme != "https" or not any(d.matches(host, port) for d in dests):
            off.append((url, where))
    return off


def _bad(key: str, msg: str, hint: str = "") -> CorralError:
    return CorralError("secrets", f"`{key}`: {msg}", hint)


def parse_source(key: str, text: str) -> tuple[str, str]:
    """``env:NAME`` or ``keyring:SERVICE/USER`` (``keyring:USER`` uses the service
    ``corral-broker``)."""
    kind, sep, rest = text.partition(":")
    if not sep or not rest.strip():
        raise _bad(f"{key}.source", f"{text!r} is not env:NAME or keyring:SERVICE/USER")
    if kind == "env":
        if not rest.replace("_", "").isalnum() or not rest.isascii():
            raise _bad(f"{key}.source", f"{rest!r} is not a variable name")
        return "env", rest
    if kind == "keyring":
        service, slash, user = rest.rpartition("/")
        return "keyring", f"{service if slash else KEYRING_SERVICE}/{user}"
    raise _bad(f"{key}.source", f"unknown source {kind!r}", "use env:NAME or "
               "keyring:SERVICE/USER")


def _configured(name: str, table: Mapping[str, Any], origin: str) -> CredentialSpec:
    key = f"secrets.broker.credentials.{name}"
    kind = str(table.get("kind", "api_key"))
    hosts = tuple(str(h) for h in table.get("hosts", ()))
    index_url = str(table.get("index_url", ""))
    if kind == "pip":
        if not index_url:
            raise _bad(key, 'kind = "pip" needs index_url = "https://host/simple/"')
        parts = urlsplit(index_url)
        if parts.scheme != "https" or not parts.hostname or parts.username or parts.password:
            raise _bad(f"{key}.index_url", f"{index_url!r} must be an https:// URL without "
                       "credentials (corral adds them)")
        own = parts.netloc if parts.port else parts.hostname
        hosts = hosts or (own,)
    elif index_url:
        raise _bad(f"{key}.index_url", f'only for kind = "pip", not {kind!r}')
    if not hosts:
        raise _bad(f"{key}.hosts", "no host: a credential must name the hosts it belongs to")
    source = parse_source(key, str(table["source"])) if "source" in table else (
        "keyring", f"{KEYRING_SERVICE}/{name}")
    env_default = {"npm": "NPM_TOKEN", "pip": "PIP_INDEX_URL", "api_key": ""}.get(kind, "")
    env = str(table.get("env", env_default))
    if kind == "git" and "env" in table:
        raise _bad(f"{key}.env", 'kind = "git" presents the placeholder through a credential '
                   "helper, not a variable")
    username = str(table.get("username", {"git": "x-access-token", "pip": "__token__"}
                             .get(kind, "")))
    if username and (":" in username or not username.isprintable()):
        raise _bad(f"{key}.username", f"{username!r} cannot hold ':' or control characters")
    return CredentialSpec(name, kind, hosts, source, (env,) if env else (), username,
                          index_url, origin=origin)


def specs(cfg: Any, agent: str | None) -> list[CredentialSpec]:
    """The credentials to broker for a session of ``agent`` (None: no agent preset): the
    agent's preset, with hosts (and source) overridden by a config table of the same name,
    then every other configured credential."""
    table = cfg.get("secrets.broker.credentials", {}) or {}
    out: dict[str, CredentialSpec] = {}
    login = LOGIN_FILES.get(agent or "")
    logins = tuple(login.spec(*f) for f in login.fields) if login else ()
    for spec in (*AGENT_PRESETS.get(agent or "", ()), *logins):
        over = table.get(spec.name)
        if over is not None:
            key = spec.key
            if over.get("kind", "api_key") != "api_key" or "index_url" in over or (
                    spec.source[0] == "file" and ("source" in over or "env" in over)):
                raise _bad(key, f"{spec.name} is the {agent} preset's credential: only hosts"
                           f"{'' if spec.source[0] == 'file' else ', source and env'} may be set")
            spec = replace(
                spec, hosts=tuple(over.get("hosts", spec.hosts)) or spec.hosts,
                source=parse_source(key, over["source"]) if "source" in over else spec.source,
                env=(str(over["env"]),) if "env" in over else spec.env,
                origin=_origin(cfg, key))
        out[spec.name] = spec
    presets = {s.name for specs_ in AGENT_PRESETS.values() for s in specs_}
    presets |= {f[1] for lf in LOGIN_FILES.values() for f in lf.fields}
    for name, t in table.items():
        if name in out or name in presets:
            continue  # another agent's preset credential: only for that agent's runs
        out[name] = _configured(name, t, _origin(cfg, f"secrets.broker.credentials.{name}"))
    return list(out.values())


def _origin(cfg: Any, key: str) -> str:
    origin = cfg.origin(f"{key}.hosts") or cfg.origin(f"{key}.source") or cfg.origin(key)
    return origin.describe() if origin is not None else "config"


def placeholder_login(doc: Any, login: LoginFile, placeholders: Mapping[str, str]) -> Any:
    """The login file's JSON with each held field's placeholder (``placeholders``: credential
    name -> placeholder) and signatures cut from ``signed`` tokens; None if nothing is held."""
    import copy

    out = copy.deepcopy(doc)
    held = False
    for path, cred, _hosts, _model in login.fields:
        if cred in placeholders and _set(out, path, placeholders[cred]):
            held = True
    for path in login.signed:
        value = _get(out, path)
        if isinstance(value, str) and value.count(".") == 2:
            _set(out, path, value.rsplit(".", 1)[0] + ".corral-brokered-signature-removed")
    return out if held else None


def login_field(doc: Any, path: tuple[str, ...]) -> str | None:
    value = _get(doc, path)
    return value if isinstance(value, str) and value else None


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    for p in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(p)
    return doc


def _set(doc: Any, path: tuple[str, ...], value: str) -> bool:
    parent = _get(doc, path[:-1])
    if not isinstance(parent, dict) or not isinstance(parent.get(path[-1]), str):
        return False
    parent[path[-1]] = value
    return True


def git_helper(username: str, placeholder: str) -> str:
    """A git credential helper answering ``get`` with the placeholder (nothing else is
    stored or erased: the secret never exists inside)."""
    return (f"!f() {{ test \"$1\" = get && printf 'username=%s\\npassword=%s\\n' "
            f"'{username}' '{placeholder}'; }}; f")


def sandbox_env(items: Sequence[tuple[CredentialSpec, str, Sequence[str]]]
                ) -> dict[str, str]:
    """The variables that present placeholders inside: for each (spec, placeholder, the
    credential's hosts as ``host`` or ``host:port``)."""
    env: dict[str, str] = {}
    git: list[tuple[str, str]] = []
    for spec, placeholder, hosts in items:
        if spec.kind == "pip":
            parts = urlsplit(spec.index_url)
            value = parts._replace(netloc=f"{spec.username}:{placeholder}@{parts.netloc}")
            env.update(dict.fromkeys(spec.env, value.geturl()))
        elif spec.kind == "git":
            for h in hosts:
                url = f"credential.https://{h.removesuffix(':443')}.helper"
                git += [(url, ""), (url, git_helper(spec.username, placeholder))]
        else:
            env.update(dict.fromkeys(spec.env, placeholder))
    if git:
        env["GIT_CONFIG_COUNT"] = str(len(git))
        for i, (k, v) in enumerate(git):
            env[f"GIT_CONFIG_KEY_{i}"] = k
            env[f"GIT_CONFIG_VALUE_{i}"] = v
    return env
