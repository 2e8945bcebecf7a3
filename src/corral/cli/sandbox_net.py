"""``corral sandbox --network proxy``: start the managed proxy for one sandboxed command.

The proxy listens on a unix socket in a private directory under ``$CORRAL_HOME/state`` (which
the sandbox cannot see); the sandbox bind-mounts that socket and bridges it to loopback.
Unknown domains are denied: ``corral sandbox`` has no approvals.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from corral.sandbox import NetworkMode, NetworkPlan

HTTP_PORT, SOCKS_PORT = 3128, 1080  # inside the sandbox's own network namespace


@contextlib.contextmanager
def managed_proxy(cfg: Any, allow: Sequence[str], deny: Sequence[str]) -> Iterator[NetworkPlan]:
    from corral.errors import CorralError
    from corral.netproxy import Listen, Proxy, policy_from_config, proxy_env
    from corral.netproxy.policy import DomainPattern, DomainRule

    policy = policy_from_config(cfg)
    try:
        extra = [DomainRule(DomainPattern.parse(d), "allow", "--allow-domain") for d in allow]
        extra += [DomainRule(DomainPattern.parse(d), "deny", "--deny-domain") for d in deny]
    except (ValueError, CorralError) as exc:
        msg = exc.message if isinstance(exc, CorralError) else str(exc)
        raise CorralError("network", f"bad domain pattern: {msg}") from None
    if policy.managed_only:
        extra = [r for r in extra if r.verdict != "allow"]
    policy = replace(policy, rules=policy.rules + tuple(extra))
    from corral.paths import socket_parent  # a long CORRAL_HOME: a private runtime dir

    base = socket_parent(Path(getattr(cfg, "corral_home", None) or
                              os.path.expanduser("~/.corral")))
    rundir = Path(tempfile.mkdtemp(prefix="proxy-", dir=base))
    sock = rundir / "proxy.sock"
    proxy = Proxy(policy, None, listen=Listen(http=None, socks=None, unix=str(sock)))
    proxy.start()
    try:
        yield NetworkPlan(
            mode=NetworkMode.PROXY, proxy_socket=sock,
            proxy_env=proxy_env(HTTP_PORT, SOCKS_PORT), bridge_ports=(HTTP_PORT, SOCKS_PORT),
            allow_domains=tuple(allow), deny_domains=tuple(deny),
        )
    finally:
        proxy.stop()
        shutil.rmtree(rundir, ignore_errors=True)
