"""``corral proxy``: run the managed network proxy standalone."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer


def _addr(text: str, flag: str) -> tuple[str, int]:
    from corral.errors import CorralError

    host, sep, port = text.rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise CorralError("network", f"{flag} {text!r} must be HOST:PORT", "e.g. 127.0.0.1:3128")
    return host.strip("[]"), int(port)


def register(app: typer.Typer) -> None:
    @app.command("proxy")
    def proxy(
        ctx: typer.Context,
        listen: Annotated[str, typer.Option("--listen", help="HTTP proxy address HOST:PORT.")] = (
            "127.0.0.1:3128"
        ),
        socks_listen: Annotated[
            str | None, typer.Option("--socks-listen", help="SOCKS5 address HOST:PORT.")
        ] = None,
        unix: Annotated[
            Path | None, typer.Option("--unix", help="Also listen on this unix socket (HTTP+SOCKS).")
        ] = None,
        allow: Annotated[list[str] | None, typer.Option("--allow", help="Allow a domain pattern.")] = None,
        deny: Annotated[list[str] | None, typer.Option("--deny", help="Deny a domain pattern.")] = None,
        allow_local: Annotated[
            list[str] | None,
            typer.Option("--allow-local", help="Let HOST:PORT be a local/private address."),
        ] = None,
        ask: Annotated[
            bool, typer.Option("--ask/--no-ask", help="Ask on this terminal about unknown hosts.")
        ] = False,
        events: Annotated[
            bool, typer.Option("--events", help="Print one JSON line per decision to stderr.")
        ] = False,
        mitm: Annotated[
            bool,
            typer.Option("--mitm", help="Intercept HTTPS for limited-mode hosts (CA under "
                         "$CORRAL_HOME/proxy-ca)."),
        ] = False,
        no_config: Annotated[
            bool, typer.Option("--no-config", help="Ignore config; use only these flags.")
        ] = False,
    ) -> None:
        """Run the managed network proxy (HTTP/CONNECT and SOCKS5) in the foreground."""
        import asyncio
        import json
        import sys
        import threading
        from dataclasses import asdict, replace

        from corral.cli.common import load_effective_config
        from corral.netproxy import (
            AskAnswer,
            Listen,
            NetworkDecision,
            NetworkQuestion,
            PolicyInputs,
            Proxy,
            build_policy,
            policy_from_config,
        )
        from corral.netproxy.policy import DomainPattern, DomainRule, LocalGrant

        if no_config:
            policy = build_policy(PolicyInputs())
        else:
            policy = policy_from_config(load_effective_config(ctx))
        extra = [DomainRule(DomainPattern.parse(d), "allow", "--allow") for d in allow or []]
        extra += [DomainRule(DomainPattern.parse(d), "deny", "--deny") for d in deny or []]
        grants = [LocalGrant.parse(a, "--allow-local") for a in allow_local or []]
        if policy.managed_only:
            extra = [r for r in extra if r.verdict != "allow"]
            grants = []
        policy = replace(
            policy, rules=policy.rules + tuple(extra), allow_local=policy.allow_local + tuple(grants)
        )

        def on_decision(d: NetworkDecision) -> None:
            if events:
                print(json.dumps({"event": "network.decision", **asdict(d)}), file=sys.stderr,
                      flush=True)

        tty_lock = threading.Lock()

        def ask_tty(q: NetworkQuestion) -> AskAnswer:
            with tty_lock:
                print(f"corral: network: {q.prompt()} [y/N/s(ession)] ", end="", file=sys.stderr,
                      flush=True)
                answer = sys.stdin.readline().strip().lower()
            return AskAnswer(answer in ("y", "s"), source="user", remember=answer == "s")

        lst = Listen(
            http=_addr(listen, "--listen"),
            socks=_addr(socks_listen, "--socks-listen") if socks_listen else None,
            unix=str(unix) if unix else None,
        )
        interceptor = None
        if mitm:
            from corral.netproxy.mitm import Mitm

            interceptor = Mitm.default()
            print(f"corral: network: HTTPS interception on; clients must trust "
                  f"{interceptor.bundle()}", file=sys.stderr)
        p = Proxy(policy, ask_tty if ask else None, on_decision=on_decision, listen=lst,
                  mitm=interceptor)

        async def run() -> None:
            ep = await p.start_servers()
            parts = [f"http={ep.http_url()}" if ep.http else ""]
            if ep.socks:
                parts.append(f"socks={ep.socks_url()}")
            if ep.unix:
                parts.append(f"unix={ep.unix}")
            print("corral: network: proxy listening " + " ".join(x for x in parts if x),
                  file=sys.stderr, flush=True)
            try:
                await asyncio.Event().wait()
            finally:
                await p.close()

        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run())
