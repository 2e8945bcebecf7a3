"""Disabling security tools: stopping, killing, unloading or uninstalling audit, EDR, antivirus,
logging and mandatory-access-control services; firewalls flushed; kernel and OS protections
(SELinux, AppArmor, SIP, Gatekeeper, Defender) turned off.

Looking at them (``systemctl status auditd``, ``ufw status``, ``iptables -L``) is everyday work
and stays allowed; only changes that switch a protection off are findings.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from corral.review.findings import Cmd, Scan
from corral.review.places import Place

# a name boundary before each: "falcon-sensor", "com.crowdstrike.falcond", not "reset"
_GUARDS = re.compile(
    r"(?:^|[-_.@/])(apparmor|selinux|auditd?|auditbeat|firewalld|ufw|iptables|ip6tables|"
    r"nftables|netfilter-persistent|falcon|falco|crowdstrike|osquery|clamav|clamd|freshclam|"
    r"sentinel|defender|mdatp|wazuh|ossec|fail2ban|aide|sshguard|cbagent|cbdaemon|"
    r"carbonblack|elastic-agent|elastic-endpoint|sysmon|tetragon|tracee|rkhunter|chkrootkit|"
    r"suricata|snort|zeek|qualys|tanium|sophos|eset|mcafee|trellix|cylance|cortex|traps|"
    r"santa|xagt|rsyslog|syslog-ng|systemd-journald|journald|auditctl|lynis|tripwire)",
    re.I)
_OFF_VERBS = frozenset({"stop", "disable", "mask", "kill", "teardown", "unload", "bootout",
                        "remove", "off", "del", "delete", "zap", "down", "freeze"})
_VERBS = ("disable", "turn off", "stop", "uninstall", "remove")


def is_guard(name: str) -> bool:
    return bool(_GUARDS.search(name[:200]))


def _off(scan: Scan, what: str, *tools: str) -> None:
    """High risk; a request that names the act and the tool ("stop auditd") authorizes it."""
    scan.add("security-tools", "high", what, _VERBS, tuple(t[-60:] for t in tools))


def service(verb: str, units: list[str], scan: Scan) -> bool:
    """``systemctl stop auditd``, ``service apparmor teardown``: True when judged here."""
    sec = [u for u in units if is_guard(u)]
    if verb in _OFF_VERBS and sec:
        _off(scan, f"disables the security service {sec[0]} ({verb})", *sec)
        return True
    return False


def _kill(cmd: Cmd, place: Place, scan: Scan) -> None:
    if cmd.name == "kill":
        return  # a pid: judged in the text (``kill $(pidof auditd)``)
    names = [t for t, k in cmd.operands("sunUgGPt", ("--signal", "--uid", "--euid", "--group",
                                                     "--parent", "--terminal", "--session",
                                                     "--ns", "--nslist")) if k]
    sec = [n for n in names if is_guard(n)]
    if sec:
        _off(scan, f"kills the security tool {sec[0]} (`{cmd.name}`)", *sec)


_REMOVE = {"apt": ("remove", "purge", "autoremove"), "apt-get": ("remove", "purge",
                                                                 "autoremove"),
           "aptitude": ("remove", "purge"), "yum": ("remove", "erase"),
           "dnf": ("remove", "erase"), "zypper": ("remove", "rm"), "apk": ("del",),
           "snap": ("remove",), "brew": ("uninstall", "remove", "rm"), "port": ("uninstall",),
           "pacman": (), "rpm": (), "dpkg": ()}


def _uninstall(cmd: Cmd, place: Place, scan: Scan) -> None:
    a = cmd.args
    short, long = cmd.options()
    if cmd.name == "pacman":
        removing = any(t.startswith("-R") for t in a) or "--remove" in long
    elif cmd.name == "rpm":
        removing = "e" in short or "--erase" in long
    elif cmd.name == "dpkg":
        removing = bool(short & {"r", "P"}) or bool(long & {"--remove", "--purge"})
    else:
        removing = cmd.sub() in _REMOVE[cmd.name]
    if not removing:
        return
    sec = [t for t, k in cmd.operands("") if k and is_guard(t)]
    if sec:
        _off(scan, f"uninstalls the security tool {sec[0]} (`{cmd.name}`)", *sec)


def _container(cmd: Cmd, place: Place, scan: Scan) -> None:
    """``docker stop falco``: a security tool that runs as a container."""
    words = [t for t in cmd.args if not t.startswith("-")]
    if words[:1] in (["stop"], ["kill"], ["rm"], ["pause"]) or words[:2] in (
            ["container", "stop"], ["container", "kill"], ["container", "rm"]):
        sec = [w for w in words[1:] if w not in ("container", "stop", "kill", "rm") and
               is_guard(w)]
        if sec:
            _off(scan, f"stops the security tool container {sec[0]} (`{cmd.name} "
                 f"{words[0]}`)", *sec)


def _launchctl(cmd: Cmd, place: Place, scan: Scan) -> None:
    if cmd.sub() in ("unload", "bootout", "disable", "remove", "kill", "stop") and any(
            is_guard(t) for t in cmd.args):
        label = next(t for t in cmd.args if is_guard(t))
        _off(scan, f"unloads the security agent {label[-60:]} (launchctl {cmd.sub()})")


_VENDOR: dict[str, re.Pattern[str]] = {
    # the subcommands or options of vendor tools that switch the protection off
    "falconctl": re.compile(r"^(-d|--delete|unload|uninstall|--rfm-state=?true)$"),
    "mdatp": re.compile(r"^(disabled|uninstall|passive)$"),
    "sentinelctl": re.compile(r"^(unload|unprotect|disable|uninstall)$"),
    "osqueryctl": re.compile(r"^(stop)$"),
    "wazuh-control": re.compile(r"^(stop)$"), "ossec-control": re.compile(r"^(stop)$"),
    "pfctl": re.compile(r"^-d$"),
    "socketfilterfw": re.compile(r"^(--setglobalstate=?|off)$"),
    "santactl": re.compile(r"^(--mode=?monitor|monitor|uninstall)$"),
}
_SERVICE_TOOLS = ("invoke-rc.d", "rc-service", "sv", "rc-update", "update-rc.d", "chkconfig")


def _vendor(cmd: Cmd, place: Place, scan: Scan) -> None:
    a = [t.lower() for t in cmd.args]
    if cmd.name in _SERVICE_TOOLS:
        ops = [t for t in a if not t.startswith("-")]
        if any(is_guard(t) for t in ops) and any(t in _OFF_VERBS for t in ops):
            _off(scan, f"disables the security service {next(t for t in ops if is_guard(t))} "
                 f"({cmd.name})")
        return
    if cmd.name == "socketfilterfw":
        if any(t.startswith("--setglobalstate") for t in a) and "off" in a:
            _off(scan, "turns off the macOS application firewall")
        return
    pat = _VENDOR[cmd.name]
    hit = next((t for t in a if pat.match(t)), None)
    if hit is not None:
        _off(scan, f"switches off a security tool (`{cmd.name} {hit}`)")


def init_script(cmd: Cmd, place: Place, scan: Scan) -> None:
    """``/etc/init.d/auditd stop``: the service's own script, named by its path."""
    if re.match(r"^/etc/(rc\.d/)?(init\.d|rc\.d)/", cmd.argv0) and is_guard(cmd.name) and (
            cmd.sub() in _OFF_VERBS):
        _off(scan, f"stops the security service {cmd.name} ({cmd.argv0} {cmd.sub()})",
             cmd.name)


def _firewall(cmd: Cmd, place: Place, scan: Scan) -> None:
    a = cmd.args
    short, long = cmd.options()
    hit = None
    if cmd.name == "setenforce" and a[:1] in (("0",), ("Permissive",), ("permissive",)):
        hit = "puts SELinux in permissive mode (setenforce 0)"
    elif cmd.name == "ufw" and a[:1] in (("disable",), ("reset",)):
        hit = f"turns off the firewall (ufw {a[0]})"
    elif cmd.name in ("iptables", "ip6tables", "iptables-legacy", "iptables-nft") and (
            "F" in short or "--flush" in long or ("P" in short and "ACCEPT" in a)
            or "X" in short):
        hit = f"flushes or opens the firewall ({cmd.name} {' '.join(a[:3])})"
    elif cmd.name == "nft" and "flush" in a:
        hit = "flushes the nftables firewall"
    elif cmd.name == "firewall-cmd" and any(t.startswith("--set-default-zone") and "trusted" in
                                            " ".join(a) for t in a):
        hit = "makes every connection trusted (firewall-cmd --set-default-zone=trusted)"
    elif cmd.name in ("aa-teardown", "aa-disable", "aa-complain"):
        hit = f"disables AppArmor profiles ({cmd.name})"
    elif cmd.name == "apparmor_parser" and ("R" in short or "--remove" in long):
        hit = "unloads AppArmor profiles"
    elif cmd.name == "auditctl" and ("D" in short or ("e" in short and "0" in a)):
        hit = "turns off system auditing (auditctl)"
    elif cmd.name == "spctl" and ("--master-disable" in long or "--global-disable" in long):
        hit = "disables macOS Gatekeeper"
    elif cmd.name == "csrutil" and "disable" in a:
        hit = "disables macOS System Integrity Protection"
    elif cmd.name == "sysctl" and any(re.search(r"randomize_va_space=0|ptrace_scope=0|"
                                                r"kptr_restrict=0|dmesg_restrict=0", t)
                                      for t in a):
        hit = "weakens kernel hardening (sysctl)"
    if hit:
        scan.add("security-tools", "high", hit, ("disable", "turn off", "firewall", "selinux"),
                 ())


_KILL_BY_NAME = re.compile(r"\bkill\b[^;&|\n]{0,40}(?:\$\(|`)\s*(?:pidof|pgrep)\s+(?:-\w+\s+)"
                           r"{0,4}['\"]?([\w.@-]{1,64})")
_DEFENDER = re.compile(r"\bSet-MpPreference\b[^;|\n]{0,80}-Disable\w{0,40}\s+(\$true|1)\b|"
                       r"\bAdd-MpPreference\b[^;|\n]{0,40}-ExclusionPath\b", re.I)
_KERNEL_ARGS = re.compile(r"\b(selinux|apparmor|audit|enforcing|lockdown)=(0|none)\b|"
                          r"\bamfi_get_out_of_my_way=1\b|\bsecurity=none\b")


def text_checks(text: str, scan: Scan) -> None:
    """Whole-script patterns: a security daemon killed by pid, Defender switched off from
    PowerShell, protections disabled on the kernel command line."""
    m = _KILL_BY_NAME.search(text) if "kill" in text else None
    if m is not None and is_guard(m.group(1)):
        _off(scan, f"kills the security tool {m.group(1)} (by pid)", m.group(1))
    m = _DEFENDER.search(text) if "MpPreference" in text else None
    if m is not None:
        _off(scan, f"turns off Microsoft Defender protection ({m.group(0)[:50]})")
    m = _KERNEL_ARGS.search(text) if "=" in text else None
    if m is not None and re.search(r"\b(grubby|grub|kernelopts|GRUB_CMDLINE|nvram|kernelstub|"
                                   r"bootctl|cmdline)", text):
        _off(scan, f"turns off a kernel protection at boot ({m.group(0)})")


HANDLERS: dict[str, Callable[[Cmd, Place, Scan], None]] = {
    "kill": _kill, "pkill": _kill, "killall": _kill,
    **{n: _uninstall for n in _REMOVE},
    "launchctl": _launchctl,
    **{n: _container for n in ("docker", "podman", "nerdctl")},
    **{n: _vendor for n in (*_VENDOR, *_SERVICE_TOOLS)},
    **{n: _firewall for n in ("setenforce", "ufw", "iptables", "ip6tables", "iptables-legacy",
                              "iptables-nft", "nft", "firewall-cmd", "aa-teardown",
                              "aa-disable", "aa-complain", "apparmor_parser", "auditctl",
                              "spctl", "csrutil", "sysctl")},
}
