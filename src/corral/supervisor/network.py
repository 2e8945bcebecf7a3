"""The managed proxy for a session: one place that adds ``--allow-domain``/``--deny-domain`` and an
agent preset's hosts to the configured network policy, and starts the proxy on a unix socket the
sandbox bridges to loopback.

Extra rules are never managed: under ``network.managed_domains_only`` the policy itself ignores
their allows (only the administrator's list may allow) and keeps their denials, so every caller
(``corral run``, ``corral exec``, ``corral sandbox --network proxy``) gets the same answer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

TYPE_CHECKING = False  # typing costs ~5 ms of every corral exec's start
if TYPE_CHECKING:
    from typing import Any, Literal

HTTP_PORT, SOCKS_PORT = 3128, 1080  # inside the sandbox's own network namespace


def with_domains(policy: Any, allow: Sequence[str] = (), deny: Sequence[str] = (),
                 preset: tuple[str, Sequence[str]] | None = None) -> tuple[Any, list[str]]:
    """``policy`` plus the extra rules, and the warning lines for allows that
    ``managed_domains_only`` makes void (denials always hold)."""
    from corral.errors import CorralError
    from corral.netproxy import DomainPattern
    from corral.netproxy.policy import DomainRule

    def rule(pattern: str, verdict: Literal["allow", "deny"], source: str) -> Any:
        try:
            return DomainRule(DomainPattern.parse(pattern), verdict, source)
        except (ValueError, CorralError) as exc:
            msg = exc.message if isinstance(exc, CorralError) else str(exc)
            raise CorralError("network", f"bad domain pattern {pattern!r}: {msg}") from None

    name, hosts = preset or ("", ())
    extra = [rule(h, "allow", f"preset {name}") for h in hosts]
    extra += [rule(d, "allow", "--allow-domain") for d in allow]
    extra += [rule(d, "deny", "--deny-domain") for d in deny]
    warnings: list[str] = []
    if policy.managed_only:
        # what the administrator's own list does not allow anyway (a wildcard always counts)
        void = [d for d in (*hosts, *allow)
                if "*" in d or policy.evaluate(d.lower(), "https").action != "allow"]
        if void:
            warnings.append(f"corral: network: warning: {', '.join(void)} not allowed: "
                            "network.managed_domains_only (only the administrator's domains "
                            "may be allowed)")
    from dataclasses import replace  # the proxy's policy is a dataclass; only when it runs

    return replace(policy, rules=policy.rules + tuple(extra)), warnings


def start_proxy(cfg: Any, sock: Path, *, allow: Sequence[str] = (), deny: Sequence[str] = (),
                preset: tuple[str, Sequence[str]] | None = None,
                ask: Callable[[Any], Any] | None = None,
                on_decision: Callable[[Any], None] | None = None,
                model_urls: Sequence[tuple[str, str]] = ()) -> tuple[Any, Any]:
    """(running proxy, the sandbox's ``NetworkPlan`` for it). ``ask`` answers unknown hosts
    (None: denied); ``on_decision`` records each decision. The credential broker holds the
    agent's (``preset``'s) key and the configured credentials; ``model_urls`` are the agent's
    configured model URLs ((url, where) pairs), which its key must be able to reach."""
    from corral.netproxy import Listen, Proxy, policy_from_config, proxy_env
    from corral.sandbox import NetworkMode, NetworkPlan

    policy, warnings = with_domains(policy_from_config(cfg), allow, deny, preset)
    for w in warnings:
        print(w, file=sys.stderr)
    broker, placeholders, files = held_credentials(cfg, preset[0] if preset else None,
                                                   model_urls, rundir=sock.parent)
    mitm = ca = None
    if broker:
        mitm, ca = _interception(cfg, sock.parent / "ca.pem")
    proxy = Proxy(policy, ask, on_decision=_reporting(on_decision),
                  listen=Listen(http=None, socks=None, unix=str(sock)), mitm=mitm,
                  broker=broker)
    proxy.start()
    from corral.netproxy.brokerconfig import CA_INSIDE

    env = {**proxy_env(HTTP_PORT, SOCKS_PORT, ca_bundle=CA_INSIDE if ca else None),
           **placeholders}
    net = NetworkPlan(mode=NetworkMode.PROXY, proxy_socket=sock, proxy_env=env,
                      bridge_ports=(HTTP_PORT, SOCKS_PORT), allow_domains=tuple(allow),
                      deny_domains=tuple(deny),
                      ro_files=((("ca.pem", ca),) if ca is not None else ()) + files)
    return proxy, net


def _reporting(on_decision: Callable[[Any], None] | None) -> Callable[[Any], None]:
    """``on_decision`` plus one line on the terminal per refused placeholder (once per
    credential and host): the control, what it refused and why."""
    said: set[tuple[str, str]] = set()

    def decided(d: Any) -> None:
        if d.reason == "credential_exfiltration" and (d.source, d.host) not in said:
            said.add((d.source, d.host))
            print(f"corral: network: refused {d.protocol} to {d.host}:{d.port}: it carries the "
                  f"placeholder of the brokered credential {d.source.removeprefix('broker:')}, "
                  "which works only on its own hosts (an exfiltration attempt, journaled)",
                  file=sys.stderr, flush=True)
        if on_decision is not None:
            on_decision(d)

    return decided


def _interception(cfg: Any, bundle: Path) -> tuple[Any, Path]:
    """corral's CA (``$CORRAL_HOME/proxy-ca``) for the brokered hosts, verifying the real
    servers against the system's trust plus ``secrets.broker.upstream_ca_file``; and the
    bundle (system trust + corral's CA) the sandbox trusts, written to ``bundle``."""
    from corral.errors import CorralError
    from corral.netproxy.mitm import Mitm

    extra = cfg.get("secrets.broker.upstream_ca_file")
    if extra and not Path(str(extra)).is_file():
        raise CorralError("secrets", f"`secrets.broker.upstream_ca_file`: {extra} is not a file")
    mitm = Mitm(Path(cfg.corral_home) / "proxy-ca", str(extra) if extra else None)
    if extra:
        mitm.upstream.load_default_certs()  # an extra anchor, not the only one
    return mitm, mitm.bundle(bundle)


def held_credentials(cfg: Any, agent: str | None, model_urls: Sequence[tuple[str, str]] = (),
                     environ: Mapping[str, str] | None = None, rundir: Path | None = None,
                     ) -> tuple[Any, dict[str, str], tuple[tuple[str, Path], ...]]:
    """(the ``Broker``, or None when it holds nothing; the variables that present its
    placeholders inside the sandbox; (path inside, file) pairs: the agent's login file with
    placeholders, written to ``rundir``, mounted over the real one). The agent's key or login
    is held only when every model URL it is configured with is one of the key's hosts over
    https; otherwise it is passed as before and one line says why (refused instead when
    requirements make the broker required). A configured credential whose secret is missing
    is an error."""
    from corral.errors import CorralError
    from corral.netproxy.broker import Broker, Credential
    from corral.netproxy.brokerconfig import (
        enabled,
        off_model_urls,
        required,
        sandbox_env,
        specs,
    )

    if not enabled(cfg):
        return None, {}, ()
    env = os.environ if environ is None else environ
    held: list[Any] = []
    items: list[tuple[Any, str, Sequence[str]]] = []
    login = _login(agent, env)
    for spec in specs(cfg, agent):
        if spec.source[0] == "file" and login is None:
            continue
        secret = _secret(cfg, spec, env, login[1] if login else None)
        if secret is None:
            if spec.preset:
                continue  # the agent has no such key here: nothing to hold
            where = (f"${spec.source[1]}" if spec.source[0] == "env"
                     else f"the keyring ({spec.source[1]})")
            raise CorralError("secrets", f"credential {spec.name} ({spec.origin}) has no secret "
                              f"in {where}", "set it, or remove the credential from "
                              "[secrets.broker.credentials]")
        cred = Credential.new(spec.name, spec.hosts, secret)
        off = off_model_urls(spec, model_urls)
        if off:
            url, where = off[0]
            what = spec.source[1] if spec.source[0] == "env" else (
                f"the login in {login[0]}" if login else spec.name)
            if spec.source[0] == "file":
                login = None  # the whole file stays as it is
            line = (f"corral: secrets: {what} is not brokered: the agent's model URL "
                    f"{url} (from {where}) is not one of its hosts ({cred.hosts}) over https")
            fix = f"add the host to [secrets.broker.credentials.{spec.name}] hosts"
            if required(cfg):
                raise CorralError("secrets", line.removeprefix("corral: secrets: ") +
                                  f"; the broker is required by {required(cfg)}", fix)
            print(f"{line}, so the agent and its commands see the real key; {fix}",
                  file=sys.stderr)
            continue
        held.append(cred)
        items.append((spec, cred.placeholder, [str(d) for d in cred.destinations]))
    files: tuple[tuple[str, Path], ...] = ()
    if login is not None and rundir is not None:
        files = _login_copy(agent or "", login, held, rundir)
    held = [c for c in held if c.name not in _login_names(agent) or files]
    return ((Broker(held) if held else None), {**_masked_environ(held, env),
                                                **sandbox_env(items)}, files)


def _login(agent: str | None, env: Mapping[str, str]) -> tuple[Path, Any] | None:
    """(path, parsed JSON) of the agent's login file, if it has one and it reads."""
    import json

    from corral.netproxy.brokerconfig import LOGIN_FILES

    lf = LOGIN_FILES.get(agent or "")
    if lf is None:
        return None
    path = lf.path(env)
    try:
        if path.is_symlink() or path.stat().st_size > 1 << 20:
            return None  # not a login file we rewrite: left to the credential catalogue
        return path, json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None


def _login_names(agent: str | None) -> set[str]:
    from corral.netproxy.brokerconfig import LOGIN_FILES

    lf = LOGIN_FILES.get(agent or "")
    return {f[1] for f in lf.fields} if lf else set()


def _login_copy(agent: str, login: tuple[Path, Any], held: Sequence[Any], rundir: Path,
                ) -> tuple[tuple[str, Path], ...]:
    """The login file with placeholders, written (0600) to ``rundir``, to mount over it."""
    import json

    from corral.netproxy.brokerconfig import LOGIN_FILES, placeholder_login

    doc = placeholder_login(login[1], LOGIN_FILES[agent], {c.name: c.placeholder for c in held})
    if doc is None:
        return ()
    out = rundir / f"login-{login[0].name}"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f)
    return ((str(login[0]), out),)


def _masked_environ(held: Sequence[Any], env: Mapping[str, str]) -> dict[str, str]:
    """Every variable of corral's environment that holds a brokered secret (its source, or
    the same secret under another name), with the placeholder in its place: whatever the
    environment policy lets through, no secret the broker holds enters the sandbox."""
    out: dict[str, str] = {}
    for k, v in env.items():
        for c in held:
            if c.secret in v:
                v = out[k] = v.replace(c.secret, c.placeholder)
    return out


def _secret(cfg: Any, spec: Any, env: Mapping[str, str], login: Any = None) -> str | None:
    """The secret from corral's own environment, the agent's login file, or the OS keyring
    (``credentials.store``)."""
    kind, where = spec.source
    if kind == "env":
        return env.get(where, "").strip() or None
    if kind == "file":
        from corral.netproxy.brokerconfig import login_field

        return login_field(login, tuple(where.partition(":")[2].split(".")))
    from corral.credentials import get

    service, _, user = where.rpartition("/")
    value, _ = get(cfg, Path(cfg.corral_home), service, user, control="secrets")
    return value.strip() if value else None
