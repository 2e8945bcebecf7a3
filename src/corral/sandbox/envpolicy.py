"""``shell_environment_policy``: which environment variables reach a sandboxed command.

Order (Codex-compatible): inherit (all|core|none) -> default excludes (unless ignored) ->
exclude -> secret values (corral: ``corral.sandbox.secretvalues``, unless the name is in
``keep_secrets``) -> set -> include_only. Then corral's markers are added, which no policy can
remove. ``dropped`` names what was left out and why, never a value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from corral.errors import CorralError
from corral.record import Frozen

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any

CORE_VARS = ("HOME", "LOGNAME", "PATH", "SHELL", "USER", "USERNAME", "TMPDIR", "TEMP", "TMP")
DEFAULT_EXCLUDES = ("*KEY*", "*SECRET*", "*TOKEN*", "*PASSWORD*")
PASSTHROUGH_IDS = ("CORRAL_SESSION_ID", "CORRAL_CALL_ID", "TRACEPARENT")


class EnvPolicy(Frozen):
    _fields = ("inherit", "exclude", "include_only", "set", "ignore_default_excludes",
               "keep_secrets")
    inherit: str
    exclude: tuple[str, ...]
    include_only: tuple[str, ...]
    set: Mapping[str, str]
    ignore_default_excludes: bool
    # Name patterns kept although their value looks like a credential (the user's choice).
    keep_secrets: tuple[str, ...]

    def __init__(self, inherit: str = "all", exclude: tuple[str, ...] = (),
                 include_only: tuple[str, ...] = (), set: Mapping[str, str] | None = None,
                 ignore_default_excludes: bool = False, keep_secrets: tuple[str, ...] = ()
                 ) -> None:
        self._set(inherit=inherit, exclude=exclude, include_only=include_only,
                  set={} if set is None else set, ignore_default_excludes=ignore_default_excludes,
                  keep_secrets=keep_secrets)
        if self.inherit not in ("all", "core", "none"):
            raise CorralError(
                "sandbox", f"shell_environment_policy.inherit must be all|core|none, "
                f"got {self.inherit!r}",
            )

    @classmethod
    def from_table(cls, table: Mapping[str, Any] | None) -> EnvPolicy:
        t = dict(table or {})

        def strs(key: str) -> tuple[str, ...]:
            v = t.get(key, [])
            if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise CorralError(
                    "sandbox", f"shell_environment_policy.{key} must be a list of strings"
                )
            return tuple(v)

        sets = t.get("set", {}) or {}
        if not isinstance(sets, Mapping):
            raise CorralError("sandbox", "shell_environment_policy.set must be a table")
        return cls(
            inherit=str(t.get("inherit", "all")),
            exclude=strs("exclude"),
            include_only=strs("include_only"),
            set={str(k): str(v) for k, v in sets.items()},
            ignore_default_excludes=bool(t.get("ignore_default_excludes", False)),
            keep_secrets=strs("keep_secrets"),
        )


def _matches(name: str, patterns: tuple[str, ...]) -> bool:
    upper = name.upper()
    for p in patterns:
        pu = p.upper()
        core = pu[1:-1]
        if len(pu) >= 2 and pu[0] == pu[-1] == "*" and not any(c in core for c in "*?["):
            if core in upper:  # the common "*WORD*" form, without importing fnmatch/re
                return True
        else:
            import fnmatch

            if fnmatch.fnmatchcase(upper, pu):
                return True
    return False


def dropped(policy: EnvPolicy, source: Mapping[str, str]) -> list[tuple[str, str]]:
    """(name, why) for each variable of ``source`` the policy leaves out, in order."""
    out: list[tuple[str, str]] = []
    build_env(policy, source, why=out)
    return out


def build_env(
    policy: EnvPolicy,
    source: Mapping[str, str],
    extra: Mapping[str, str] | None = None,
    *,
    sandboxed: bool = True,
    why: list[tuple[str, str]] | None = None,
) -> dict[str, str]:
    """The environment for a sandboxed process.

    ``extra`` holds values the caller (supervisor) sets for this call: CORRAL_SESSION_ID,
    CORRAL_CALL_ID, TRACEPARENT and, later, proxy variables. They bypass the filters because
    corral chose them, not the user's shell. ``why`` receives (name, reason) for each variable
    of ``source`` left out.
    """
    if policy.inherit == "all":
        env = dict(source)
    elif policy.inherit == "core":
        env = {k: source[k] for k in CORE_VARS if k in source}
    else:
        env = {}
    if why is not None and policy.inherit != "all":
        why += [(k, f"inherit = {policy.inherit}") for k in source if k not in env]

    def drop(test: Callable[[str, str], str | None]) -> None:
        for k, v in list(env.items()):
            reason = test(k, v)
            if reason is not None:
                del env[k]
                if why is not None:
                    why.append((k, reason))

    if not policy.ignore_default_excludes:
        drop(lambda k, v: "name matches a default exclude (*KEY*, *SECRET*, *TOKEN*, "
             "*PASSWORD*)" if _matches(k, DEFAULT_EXCLUDES) else None)
    if policy.exclude:
        drop(lambda k, v: "shell_environment_policy.exclude" if _matches(k, policy.exclude)
             else None)
    from corral.sandbox.secretvalues import kind

    keep = policy.keep_secrets
    drop(lambda k, v: None if keep and _matches(k, keep) else (
        None if (found := kind(k, v)) is None else f"secret value: {found}"))
    env.update(policy.set)
    if policy.include_only:
        drop(lambda k, v: None if _matches(k, policy.include_only) else "not in shell_environment_policy.include_only")
    for key in (*PASSTHROUGH_IDS, "CORRAL_SANDBOX"):
        env.pop(key, None)
    if extra:
        env.update(extra)
    env["CORRAL_SANDBOX"] = "1" if sandboxed else "0"
    return env
