"""Loopback-to-unix-socket bridge, run inside the sandbox's network namespace.

``python -m corral.netproxy.bridge --listen 127.0.0.1:3128 --to /run/corral/proxy.sock
[--listen 127.0.0.1:8081 --to /run/corral/proxy.sock]`` accepts TCP on loopback and relays each
connection to the proxy's unix socket (which is bind-mounted into the sandbox); prints one
``listening HOST:PORT`` line per listener once ready. The relay is the sandbox's own
(``corral.sandbox.proxyinit.connection_handler``), SOCKS5 UDP ASSOCIATE included, for a
sandbox built by hand around the proxy rather than by ``corral sandbox --network proxy``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from corral.sandbox.proxyinit import connection_handler


async def run(pairs: list[tuple[str, int, str]]) -> None:
    servers = []
    for host, port, sock in pairs:
        srv = await asyncio.start_server(connection_handler(sock, True), host, port)
        servers.append(srv)
        name = srv.sockets[0].getsockname()
        print(f"listening {name[0]}:{name[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for srv in servers:
        srv.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="corral-bridge", description=__doc__.splitlines()[0])
    ap.add_argument("--listen", action="append", required=True, metavar="HOST:PORT")
    ap.add_argument("--to", action="append", required=True, metavar="SOCKET")
    args = ap.parse_args(argv)
    if len(args.listen) != len(args.to):
        print("corral: network: bridge needs one --to per --listen", file=sys.stderr)
        return 2
    pairs = []
    for listen, sock in zip(args.listen, args.to, strict=True):
        host, _, port = listen.rpartition(":")
        if not host or not (port.isascii() and port.isdigit()):
            print(f"corral: network: bridge --listen {listen!r} must be HOST:PORT",
                  file=sys.stderr)
            return 2
        pairs.append((host.strip("[]"), int(port), sock))
    try:
        asyncio.run(run(pairs))
    except OSError as exc:
        print(f"corral: network: bridge cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
