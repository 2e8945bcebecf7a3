"""``corral sandbox --network proxy``: start the managed proxy for one sandboxed command.

The proxy listens on a unix socket in a private directory under ``$CORRAL_HOME/state`` (which
the sandbox cannot see); the sandbox bind-mounts that socket and bridges it to loopback.
Unknown domains are denied: ``corral sandbox`` has no approvals. Loopback ``allow_local``
entries are reachable inside at the same address, as under ``corral run``
(``corral.netproxy.local``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from corral.sandbox import NetworkPlan


@contextlib.contextmanager
def managed_proxy(cfg: Any, allow: Sequence[str], deny: Sequence[str],
                  argv: Sequence[str] = ()) -> Iterator[NetworkPlan]:
    """The running proxy's plan for a command ``argv``; stopped and cleaned up after."""
    from corral.netproxy.local import for_agent
    from corral.paths import socket_parent  # a long CORRAL_HOME: a private runtime dir
    from corral.supervisor.network import start_proxy

    base = socket_parent(Path(getattr(cfg, "corral_home", None) or
                              os.path.expanduser("~/.corral")))
    rundir = Path(tempfile.mkdtemp(prefix="proxy-", dir=base))
    try:
        proxy, net = start_proxy(cfg, rundir / "proxy.sock", allow=allow, deny=deny)
    except BaseException:
        shutil.rmtree(rundir, ignore_errors=True)
        raise
    try:
        forwards = for_agent(proxy, rundir, argv, None, net.bridge_ports)
        yield net.replace(extra_bridges=net.extra_bridges + forwards) if forwards else net
    finally:
        proxy.stop()
        shutil.rmtree(rundir, ignore_errors=True)
