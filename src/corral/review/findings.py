"""What the deterministic reviewer finds in an action: one Finding per risky effect.

A finding says which concern it belongs to, how risky it is, the concrete reason in words a
person reads in one line ("deletes ~/ outside the workspace"), and which words in the user's
request would show the user asked for it (``verbs`` for the kind of act, ``objects`` for what
it acts on).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.review.model import risk_rank

CATEGORIES = ("destructive", "credentials", "exfiltration", "persistence", "security",
              "publishing", "unanalysable", "scope", "anti-forensics", "security-tools",
              "tampering", "permissions", "mining", "obfuscation")


@dataclass(frozen=True)
class Finding:
    category: str
    risk: str  # a RiskLevel value
    reason: str
    verbs: tuple[str, ...] = ()
    objects: tuple[str, ...] = ()

    @property
    def rank(self) -> int:
        return risk_rank(self.risk)


def strongest(findings: list[Finding]) -> Finding | None:
    """The riskiest finding (first one wins a tie, so the order of checks reads naturally)."""
    best: Finding | None = None
    for f in findings:
        if best is None or f.rank > best.rank:
            best = f
    return best


@dataclass
class Cmd:
    """One simple command as the checks see it: basename, arguments, which are literal."""

    name: str
    args: tuple[str, ...]
    known_args: tuple[bool, ...]
    open_tail: bool  # more arguments are appended at run time (xargs, find -exec ... +)
    argv0: str = ""  # the command word as written (``./install.sh``)

    @classmethod
    def of(cls, tokens: tuple[str, ...], known: list[bool], open_tail: bool) -> Cmd:
        name = tokens[0].rstrip("/").rsplit("/", 1)[-1] if tokens else ""
        return cls(name, tokens[1:], tuple(known[1:]), open_tail, tokens[0] if tokens else "")

    def options(self) -> tuple[set[str], set[str]]:
        """(short option letters, long option names) before ``--``."""
        short: set[str] = set()
        long: set[str] = set()
        for t in self.args:
            if t == "--":
                break
            if t.startswith("--"):
                long.add(t.split("=", 1)[0])
            elif t.startswith("-") and len(t) > 1 and not t[1:].isdigit():
                short.update(t[1:])
        return short, long

    def operands(self, with_value: str = "", long_with_value: tuple[str, ...] = ()
                 ) -> list[tuple[str, bool]]:
        """Non-option arguments, (text, literal?), skipping the values of the listed options."""
        out: list[tuple[str, bool]] = []
        skip = False
        dashdash = False
        for t, k in zip(self.args, self.known_args, strict=False):
            if skip:
                skip = False
                continue
            if not dashdash and k and t == "--":
                dashdash = True
                continue
            if not dashdash and k and t.startswith("--") and len(t) > 2:
                skip = t in long_with_value
                continue
            if not dashdash and k and t.startswith("-") and len(t) > 1:
                for j, ch in enumerate(t[1:], 1):
                    if ch in with_value:
                        skip = j == len(t) - 1
                        break
                continue
            out.append((t, k))
        return out

    def value(self, *names: str) -> str | None:
        """The value of the first option in ``names`` (``-o V``, ``-oV``, ``--out=V``)."""
        for i, t in enumerate(self.args):
            for n in names:
                if t == n and i + 1 < len(self.args):
                    return self.args[i + 1]
                if n.startswith("--") and t.startswith(n + "="):
                    return t.split("=", 1)[1]
                if not n.startswith("--") and len(n) == 2 and t.startswith(n) and len(t) > 2 \
                        and not t.startswith("--"):
                    return t[2:]
        return None

    def sub(self) -> str:
        """The first operand (a subcommand for git/npm/kubectl-style tools)."""
        for t, k in zip(self.args, self.known_args, strict=False):
            if k and not t.startswith("-"):
                return t
        return ""


@dataclass
class Scan:
    """What scanning one action found, plus facts combined at the end (exfiltration)."""

    findings: list[Finding]
    secrets: list[str]  # secret sources read: "~/.aws/credentials", "$GITHUB_TOKEN", ...
    senders: list[tuple[str, str]]  # (host or "?", host kind) of commands reaching the network
    uploads: list[tuple[str, str, str]]  # (what, host, host kind) explicit uploads
    fetches: list[str]  # hosts code or data is downloaded from
    env_secret_only: bool = True  # every secret is a variable (tokens used to authenticate)
    downloads: dict[str, str] = field(default_factory=dict)  # saved file -> host it came from
    depth: int = 0  # nesting of remote commands (ssh host CMD, kubectl exec -- CMD)

    @classmethod
    def empty(cls) -> Scan:
        return cls([], [], [], [], [])

    def add(self, category: str, risk: str, reason: str, verbs: tuple[str, ...] = (),
            objects: tuple[str, ...] = ()) -> None:
        self.findings.append(Finding(category, risk, reason, verbs, objects))
