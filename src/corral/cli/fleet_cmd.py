"""``corral enroll``, ``corral login``, ``corral logout``, ``corral whoami`` (docs/fleet.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

_ServerOpt = Annotated[
    str | None, typer.Option("--server", help="Server URL (default: the enrolled server).")]
_CaOpt = Annotated[
    Path | None, typer.Option("--ca-file", help="Extra CA certificate for the server's TLS.")]


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(prompt)
    return sys.stdin.readline()


def register(app: typer.Typer) -> None:
    @app.command("enroll")
    def enroll(
        ctx: typer.Context,
        server: Annotated[str, typer.Option("--server", help="The corral server's URL.")],
        ca_file: _CaOpt = None,
    ) -> None:
        """Enrol this machine with corral server (enrolment token on stdin): device key in the
        OS keyring, ingest token, the server's policy key pinned; forwarding starts."""
        from corral.cli.common import load_effective_config
        from corral.fleet import enroll as do
        from corral.fleet import fingerprint
        from corral.paths import corral_home

        cfg = load_effective_config(ctx)
        home = corral_home()
        enr, where = do(cfg, home, server, _read_secret("enrolment token: "),
                        str(ca_file.absolute()) if ca_file else None)
        print(f"enrolled with {enr.server} as device {enr.device_id}"
              f" (groups: {', '.join(enr.groups) or 'none'})")
        for line in where:
            print(f"  {line}")
        print(f"  policy key pinned: {fingerprint(enr.policy_public_key)}; policy refreshed "
              f"every {enr.refresh_seconds:g} s")
        _after_enrol(ctx, home)

    @app.command("login")
    def login(
        ctx: typer.Context,
        server: _ServerOpt = None,
        ca_file: _CaOpt = None,
        ingest_token: Annotated[bool, typer.Option(
            "--ingest-token", help="Instead of signing in: store an ingest token for --server "
            "(read from stdin) in the OS keyring.")] = False,
    ) -> None:
        """Sign in to your organisation's identity provider (OAuth device authorization,
        against the issuer the server names)."""
        from corral.cli.common import load_effective_config
        from corral.paths import corral_home

        cfg = load_effective_config(ctx)
        home = corral_home()
        if ingest_token:
            from corral.forward import ForwardError
            from corral.forward import login as store

            if not server:
                raise ForwardError("login", "--ingest-token needs --server URL")
            where = store(cfg, home, server, _read_secret("ingest token: "))
            print(f"token for {server} stored in the {where}")
            return
        from corral.fleet import login as do
        from corral.fleet import login_requirement
        from corral.fleet.enforce import check_identity

        need = login_requirement(cfg, home)
        ident, where = do(cfg, home, server, str(ca_file.absolute()) if ca_file else None,
                          show=lambda line: print(line, flush=True),
                          check=(lambda i: check_identity(need, i)) if need else None)
        ws = f", {ident.workspace_claim} {ident.workspace}" if ident.workspace else ""
        print(f"signed in as {ident.display} (subject {ident.subject}{ws}) at {ident.issuer}")
        print(f"  tokens: {where}")

    @app.command("logout")
    def logout(
        ctx: typer.Context,
        server: Annotated[str | None, typer.Option(
            "--server", help="Forget the ingest token stored for this server instead.")] = None,
    ) -> None:
        """Sign out (forget the sign-in tokens); with --server, forget that server's token."""
        from corral.cli.common import load_effective_config
        from corral.paths import corral_home

        cfg = load_effective_config(ctx)
        if server:
            from corral.forward import logout as forget

            found = forget(cfg, corral_home(), server)
            print(f"token for {server} {'removed' if found else 'was not stored'}")
            return
        from corral.fleet import logout as do

        ident = do(cfg, corral_home())
        print(f"signed out {ident.display}" if ident else "was not signed in")

    @app.command("whoami")
    def whoami(ctx: typer.Context) -> None:
        """Who is signed in (the ID token verified again), and this machine's device."""
        from corral.cli.common import load_effective_config
        from corral.config.enrolment import read_enrolment
        from corral.fleet import LoginError, current
        from corral.paths import corral_home

        cfg = load_effective_config(ctx)
        home = corral_home()
        enr = read_enrolment(home)
        print(f"device: {enr.device_id} enrolled with {enr.server}" if enr else
              "device: not enrolled (corral enroll --server URL)")
        _after_enrol(ctx, home, quiet=True)  # check in, signed in or not
        try:
            ident = current(cfg, home)
        except LoginError as exc:
            print(f"user: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            raise typer.Exit(1) from None
        ws = f", {ident.workspace_claim} {ident.workspace}" if ident.workspace else ""
        print(f"user: {ident.display} (subject {ident.subject}{ws}) via {ident.method} at "
              f"{ident.issuer}")


def _after_enrol(ctx: typer.Context, home: Path, quiet: bool = False) -> None:
    """Fetch the policy now (loading the config does) and check in; say what happened."""
    from corral.cli.common import load_effective_config
    from corral.config.enrolment import read_enrolment
    from corral.forward.checkin import report, send
    from corral.forward.settings import resolve
    from corral.telemetry.journal import journal_file

    enr = read_enrolment(home)
    if enr is None:
        return
    cfg = load_effective_config(ctx)
    if not quiet:
        got = [s for s in cfg.requirements.sources if s.startswith("server policy")]
        print(f"  policy: {got[0] if got else 'none applied'}")
    try:
        settings = resolve(cfg, home, enr.server)
        send(settings, report(home, journal_file(home)))
    except Exception as exc:
        print(f"corral: warning: check-in: {exc}", file=sys.stderr)
        return
    if not quiet:
        print(f"  forwarding: on (every session ships its journal to {enr.server}; "
              "`corral forward` catches up now)")
