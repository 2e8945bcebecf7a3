"""System-level checks: processes and power, services and scheduled jobs, keychains and CLI
tokens. Security tools switched off are in ``scan_guard``, history and logs in ``scan_tamper``."""

from __future__ import annotations

from collections.abc import Callable

from corral.review import scan_guard
from corral.review.findings import Cmd, Scan
from corral.review.places import Place

_KEYCHAIN: dict[str, tuple[tuple[str, ...], str]] = {
    "security": (("find-generic-password", "find-internet-password", "dump-keychain",
                  "export"), "the macOS keychain"),
    "secret-tool": (("lookup", "search"), "the desktop keyring"),
    "pass": (("show", "", "-c", "--clip"), "the password store"),
    "gopass": (("show", "", "cat"), "the password store"),
    "op": (("read", "item", "inject"), "1Password"),
    "bw": (("get", "list", "export"), "Bitwarden"),
    "lpass": (("show", "export"), "LastPass"),
    "keyring": (("get",), "the system keyring"),
    "vault": (("read", "kv"), "HashiCorp Vault"),
}
_TOKEN_PRINTERS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("gh", ("auth", "token"), "the GitHub CLI token"),
    ("gcloud", ("auth", "print-access-token"), "a Google Cloud access token"),
    ("gcloud", ("auth", "print-identity-token"), "a Google Cloud identity token"),
    ("az", ("account", "get-access-token"), "an Azure access token"),
    ("aws", ("configure", "export-credentials"), "AWS credentials"),
    ("aws", ("sts", "get-session-token"), "AWS session credentials"),
    ("aws", ("ecr", "get-login-password"), "an AWS registry password"),
    ("heroku", ("auth:token",), "the Heroku token"),
    ("doctl", ("auth", "token"), "the DigitalOcean token"),
)
def _kill(cmd: Cmd, place: Place, scan: Scan) -> None:
    ops = [t for t, k in cmd.operands("snu", ("--signal",))]
    short, _long = cmd.options()
    if (cmd.name == "kill" and any(t in ("-1", "1") for t in cmd.args if t != "-9")) or (
            cmd.name == "killall" and (not ops or "u" in short)) or (
            cmd.name == "pkill" and ("u" in short or "U" in short) and not ops[1:]):
        scan.add("destructive", "high", f"kills every process it can signal (`{cmd.name} "
                 f"{' '.join(cmd.args)[:40]}`)", (), ())


def _power(cmd: Cmd, place: Place, scan: Scan) -> None:
    if cmd.name == "init" and cmd.sub() not in ("0", "6"):
        return
    scan.add("destructive", "high", f"shuts down or reboots the machine (`{cmd.name}`)",
             ("shutdown", "shut down", "reboot", "restart the machine", "power off"), ())


def _systemctl(cmd: Cmd, place: Place, scan: Scan) -> None:
    ops = [t.lower() for t, k in cmd.operands("")]
    verb = ops[0] if ops else ""
    units = ops[1:] if cmd.name == "systemctl" else ops[:1]
    if cmd.name == "service" and len(ops) >= 2:
        verb = ops[1]
    if scan_guard.service(verb, units, scan):
        return
    if verb in ("enable", "link", "preset", "add-wants", "edit", "set-property"):
        scan.add("persistence", "high", f"installs a service that starts automatically "
                 f"({' '.join(units[:2]) or verb})", ("enable", "service", "start on boot",
                                                     "autostart"), tuple(units))
    elif verb in ("reboot", "poweroff", "halt", "kexec", "suspend", "hibernate"):
        _power(cmd, place, scan)
    elif verb in ("start", "restart", "stop", "reload") and "--user" not in cmd.args:
        scan.add("scope", "medium", f"changes the state of system service {' '.join(units[:2])}",
                 ("start", "restart", "stop", "reload"), tuple(units))


def _crontab(cmd: Cmd, place: Place, scan: Scan) -> None:
    short, _ = cmd.options()
    if short == {"l"} or (short and short <= {"l", "u"}):
        return
    if "r" in short:
        scan.add("destructive", "high", "removes every cron job (crontab -r)", ("cron",), ())
        return
    scan.add("persistence", "high", "installs cron jobs (runs commands on a schedule, "
             "outside the session)", ("cron", "schedule", "scheduled", "crontab"), ("cron",))


def _persist_tool(cmd: Cmd, place: Place, scan: Scan) -> None:
    what = {"at": "a deferred job (at)", "batch": "a deferred job (batch)",
            "launchctl": "a launchd job", "loginctl": "lingering user services",
            "ssh-copy-id": "this key in a remote authorized_keys", "update-rc.d": "an init script",
            "chkconfig": "an init script"}[cmd.name]
    if cmd.name == "launchctl" and cmd.sub() not in ("load", "bootstrap", "enable", "submit"):
        return
    if cmd.name == "loginctl" and cmd.sub() != "enable-linger":
        return
    if cmd.name == "at" and set(cmd.options()[0]) & {"l", "d", "r"}:
        return
    scan.add("persistence", "high", f"installs {what}", ("schedule", "install", "enable",
                                                         "ssh-copy-id", "copy my key"), ())


def _keychain(cmd: Cmd, place: Place, scan: Scan) -> None:
    subs, label = _KEYCHAIN[cmd.name]
    sub = cmd.args[0] if cmd.args else ""
    if cmd.name == "vault" and sub == "kv" and (len(cmd.args) < 2 or cmd.args[1] != "get"):
        return
    if sub in subs or (cmd.name in ("pass", "gopass") and sub and not sub.startswith("-")
                       and sub not in ("ls", "list", "init", "insert", "generate", "git")):
        scan.add("credentials", "high", f"reads secrets from {label} (`{cmd.name} {sub}`)",
                 ("password", "secret", "credential", "token", "keychain"), (cmd.name,))
        scan.secrets.append(label)
        scan.env_secret_only = False


def _token_printers(cmd: Cmd, place: Place, scan: Scan) -> None:
    if cmd.name in ("gpg", "gpg2"):
        if any(t.startswith(("--export-secret-keys", "--export-secret-subkeys")) for t in
               cmd.args):
            scan.add("credentials", "high", "exports GPG private keys", ("export", "gpg",
                     "backup"), ("gpg", "private key", "secret key"))
            scan.secrets.append("GPG private keys")
            scan.env_secret_only = False
        return
    args = tuple(t for t in cmd.args if not t.startswith("-"))
    for name, prefix, label in _TOKEN_PRINTERS:
        if cmd.name == name and args[:len(prefix)] == prefix:
            scan.add("credentials", "high", f"prints {label} (`{name} {' '.join(prefix)}`)",
                     ("token", "credential", "print", "login"), (name,))
            scan.secrets.append(label)
            scan.env_secret_only = False
            return


HANDLERS: dict[str, Callable[[Cmd, Place, Scan], None]] = {
    "kill": _kill, "killall": _kill, "pkill": _kill,
    "shutdown": _power, "reboot": _power, "poweroff": _power, "halt": _power, "init": _power,
    "systemctl": _systemctl, "service": _systemctl, "crontab": _crontab,
    "at": _persist_tool, "batch": _persist_tool, "launchctl": _persist_tool,
    "loginctl": _persist_tool, "ssh-copy-id": _persist_tool, "update-rc.d": _persist_tool,
    "chkconfig": _persist_tool,
    **{n: _keychain for n in _KEYCHAIN},
    **{n: _token_printers for n in ("gh", "gcloud", "az", "aws", "heroku", "doctl", "gpg",
                                    "gpg2")},
}
