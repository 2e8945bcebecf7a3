"""``corral triage ALERT.json``: explain an endpoint alert with the agents' journal;
``corral triage feedback ID`` and ``corral triage agreement`` for the analysts' side.

With ``--server URL`` the alert goes to ``POST /v1/triage`` of corral server, which runs the
same triage over its store and records the verdict in its log (an investigator token:
``CORRAL_SERVER_TOKEN`` or ``corral login --server URL``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

TRIAGE_SESSION = "corral-triage"  # every verdict and feedback is recorded under this session

_JournalOpt = Annotated[Path | None, typer.Option(
    "--journal", help="Journal file (default $CORRAL_HOME/journal/journal.db).")]


def _journal(journal: Path | None) -> tuple[Path, Path]:
    from corral.paths import corral_home
    from corral.telemetry.journal import journal_file

    if journal is not None:
        path = journal.absolute()
        return path, path.parent.parent
    home = corral_home()
    return journal_file(home), home


def check(ctx: typer.Context,
          alert_file: Annotated[Path, typer.Argument(metavar="ALERT.json",
                                                     help="The alert (- for stdin).")],
          as_json: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON.")
                             ] = False,
          ocsf: Annotated[bool, typer.Option(
              "--ocsf", help="Print the verdict as an OCSF Detection Finding.")] = False,
          model: Annotated[str | None, typer.Option(
              "--model", help="Model name for the model step, or none for rules only "
                              "(default: triage.model, else none).")] = None,
          journal: _JournalOpt = None,
          server: Annotated[str | None, typer.Option(
              "--server", help="Triage against corral server's store (POST /v1/triage; an "
                               "investigator token from CORRAL_SERVER_TOKEN or corral login)."
          )] = None
          ) -> None:
    """Triage one alert (corral, OCSF 2004/1007 or Falco JSON) against the journal."""
    import json
    import sys
    import time

    from corral.cli.common import load_effective_config
    from corral.errors import CorralError
    from corral.triage.alerts import load_alert
    from corral.triage.verdict import Verdict, to_ocsf

    if server is not None and journal is not None:
        raise CorralError("triage", "--server and --journal exclude each other")
    if server is not None and model not in (None, "none"):
        raise CorralError("triage", f"--model {model} cannot be chosen with --server: the "
                          "server's [triage] config names its model", "or --model none")
    try:
        text = sys.stdin.read() if str(alert_file) == "-" else alert_file.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CorralError("triage", f"cannot read {alert_file}: {exc}") from None
    alert = load_alert(text)
    cfg = load_effective_config(ctx)
    if server is not None:
        from corral.cli.server_client import request

        doc = request(cfg, "triage", server, "POST", "/v1/triage", body=text.encode(),
                      params={"model": "none"} if model == "none" else None)
        try:
            v = Verdict(**{k: doc[k] for k in Verdict.__dataclass_fields__ if k in doc})
        except TypeError:
            raise CorralError("triage", f"{server} answered something that is not a "
                              "verdict") from None
    else:
        v = _local(cfg, alert, journal, model)
    if ocsf:
        print(json.dumps(to_ocsf(v, alert, time.time_ns() // 1_000_000), indent=2))
    elif as_json:
        print(json.dumps(v.to_json(), indent=2))
    else:
        who = f"session {v.session_id}" + (f" call {v.call_id}" if v.call_id else "") \
            if v.session_id else "no agent session"
        print(f"{v.verdict} ({v.confidence:.2f}) — {who}\n{v.rationale}")
        for e in v.evidence[:10]:
            print(f"  {e['event_id']} {e['name']}: {e['why']}")
        for a in v.recommended_actions:
            print(f"  → {a}")
        print(f"verdict {v.id}")


def _local(cfg: Any, alert: Any, journal: Path | None, model: str | None) -> Any:
    """Triage against this machine's journal and record the verdict there."""
    from corral.telemetry import Telemetry
    from corral.triage.source import JournalSource
    from corral.triage.verdict import event_attributes, run

    path, home = _journal(journal)
    source = JournalSource(path, area="triage")
    source.last_seq()  # no journal: one line before any model is set up
    v = run(alert, source, lambda key: cfg.get(f"triage.{key}"), model)
    tel = Telemetry.open(cfg, TRIAGE_SESSION, agent="corral-triage", home=home,
                         journal_path=path)
    try:
        ev = tel.emit("triage.verdict", event_attributes(v, alert), wait=True)
    finally:
        tel.close()
    v.id = ev.id
    return v


def feedback(ctx: typer.Context,
             verdict_id: Annotated[str, typer.Argument(metavar="ID",
                                                       help="The verdict's id.")],
             verdict: Annotated[str, typer.Option(
                 "--verdict", help="expected | mistake | escalate | not_agent")],
             note: Annotated[str, typer.Option("--note", help="Why.")] = "",
             journal: _JournalOpt = None) -> None:
    """Record an analyst's verdict on a triage verdict (a triage.feedback event)."""
    from corral.cli.common import load_effective_config
    from corral.errors import CorralError
    from corral.telemetry import Journal, Telemetry
    from corral.telemetry.redact import redact
    from corral.triage.model import VERDICTS

    if verdict not in VERDICTS:
        raise CorralError("triage", f"--verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
    path, home = _journal(journal)
    original = next((ev for ev in Journal(path).events(TRIAGE_SESSION)
                     if ev.name == "triage.verdict" and ev.id == verdict_id), None)
    if original is None:
        raise CorralError("triage", f"no triage verdict {verdict_id} in {path}")
    given = str(original.attributes.get("triage.verdict"))
    cfg = load_effective_config(ctx)
    tel = Telemetry.open(cfg, TRIAGE_SESSION, agent="corral-triage", home=home,
                         journal_path=path)
    try:
        tel.emit("triage.feedback", {
            "triage.verdict.id": verdict_id, "triage.feedback.verdict": verdict,
            "triage.feedback.note": redact(note)[:4000], "triage.verdict": given,
            "triage.feedback.agrees": given == verdict}, wait=True)
    finally:
        tel.close()
    print(f"feedback recorded: {given} -> {verdict} "
          f"({'agrees' if given == verdict else 'disagrees'})")


def agreement(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
              journal: _JournalOpt = None) -> None:
    """How often analysts agreed with the triage, and how many alerts it wrongly cleared."""
    import json

    from corral.telemetry import Journal

    path, _ = _journal(journal)
    latest: dict[str, tuple[str, str]] = {}
    for ev in Journal(path).events(TRIAGE_SESSION):
        if ev.name == "triage.feedback":
            a = ev.attributes
            latest[str(a["triage.verdict.id"])] = (str(a["triage.verdict"]),
                                                   str(a["triage.feedback.verdict"]))
    agree = sum(1 for g, f in latest.values() if g == f)
    false_clear = sum(1 for g, f in latest.values() if f == "escalate" and g != "escalate")
    out = {"reviewed": len(latest), "agreed": agree,
           "agreement": round(agree / len(latest), 3) if latest else None,
           "false_clears": false_clear}
    print(json.dumps(out) if as_json else
          f"{out['reviewed']} verdicts reviewed, {agree} agreed"
          + (f" ({out['agreement']:.0%})" if latest else "")
          + f", {false_clear} wrongly cleared (analyst escalated)")


def register(app: typer.Typer) -> None:
    """Add ``corral triage`` (ALERT.json by default; ``feedback`` and ``agreement``)."""
    import click
    from typer.core import TyperGroup

    class _DefaultCheck(TyperGroup):
        """``corral triage ALERT.json`` runs ``check``; named subcommands run themselves."""

        def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
            if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
                args = ["check", *args]
            return super().parse_args(ctx, args)

    sub = typer.Typer(name="triage", cls=_DefaultCheck, no_args_is_help=True,
                      help="Explain an endpoint alert with the agents' journal: expected, "
                           "mistake, escalate or not_agent. `corral triage ALERT.json [--json | "
                           "--ocsf] [--model NAME|none] [--journal PATH]` (ALERT.json: corral's "
                           "form, OCSF 2004/1007 or Falco JSON; - for stdin; `corral triage "
                           "check --help` for details); `feedback ID --verdict V --note TEXT`; "
                           "`agreement`. See docs/triage.md.")
    sub.command("check", hidden=True)(check)
    sub.command("feedback")(feedback)
    sub.command("agreement")(agreement)
    app.add_typer(sub)
