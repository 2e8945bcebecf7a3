"""Apply admin requirements to the merged config, so no lower layer yields a forbidden value.

A forbidden value chosen explicitly on the command line is a hard error naming the flag and the
requirement's source. A forbidden value from a config file falls back to the nearest permitted
value with a warning naming both files. Nothing here can widen what requirements allow.
"""

from __future__ import annotations

from collections.abc import Sequence

from corral.config.merge import dotted
from corral.config.model import Constraint, Origin, Requirements
from corral.config.requirements import allowed_profiles
from corral.config.schema import APPROVAL_POLICIES, REVIEWERS
from corral.errors import RequirementsError

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations only need it for mypy
if TYPE_CHECKING:
    from typing import Any

REQ = "requirements"


def _nearest(value: str, allowed: Sequence[str], order: Sequence[str]) -> str:
    """The permitted value closest to ``value`` in ``order``; ties go to the earlier (stricter)."""
    if value not in order:
        return allowed[0]
    pos = order.index(value)
    ranked = sorted(
        allowed, key=lambda a: (abs(order.index(a) - pos) if a in order else 99, order.index(a)
                                if a in order else 99)
    )
    return ranked[0]


class Enforcer:
    def __init__(
        self,
        values: dict[str, Any],
        origins: dict[str, Origin],
        req: Requirements,
        explicit: dict[str, str],
    ) -> None:
        self.values = values
        self.origins = origins
        self.req = req
        self.explicit = explicit
        self.constraints: dict[str, Constraint] = {}
        self.warnings: list[str] = []

    # -- helpers ----------------------------------------------------------------------------
    def _set(self, key: str, value: Any, source: str) -> None:
        parts = key.split(".")
        cur = self.values
        for p in parts[:-1]:
            cur = cur.setdefault(p, {})
        cur[parts[-1]] = value
        for k in [o for o in self.origins if o == key or o.startswith(key + ".")]:
            del self.origins[k]
        self.origins[key] = Origin(REQ, source)

    def _get(self, key: str) -> Any:
        cur: Any = self.values
        for p in key.split("."):
            if not isinstance(cur, dict) or p not in cur:
                return None
            cur = cur[p]
        return cur

    def _where(self, key: str) -> str:
        o = self.origins.get(key)
        return o.describe() if o else "built-in defaults"

    def _constrain_choice(
        self, key: str, allowed: list[str] | None, order: Sequence[str], name: str,
        preferred: str | None = None, current: str | None = None,
    ) -> None:
        if allowed is None:
            return
        source = self.req.source_of(name)
        self.constraints[key] = Constraint(key, source, tuple(allowed))
        value = current if current is not None else self._get(key)
        if value in allowed:
            return
        if not allowed:
            raise RequirementsError(
                f"`{name}` in {source} permits no value at all, so `{key}` cannot be set",
                "ask your administrator to fix the requirements",
            )
        if key in self.explicit:
            raise RequirementsError(
                f"{self.explicit[key]} is not allowed: `{name}` in {source} permits only "
                f"{', '.join(allowed)}"
            )
        fallback = preferred if preferred in allowed else _nearest(str(value), allowed, order)
        self.warnings.append(
            f"`{key}` = {value!r} from {self._where(key)} is not allowed by `{name}` in "
            f"{source}; using {fallback!r} instead"
        )
        self._set(key, fallback, source)

    # -- the rules --------------------------------------------------------------------------
    def run(self) -> None:
        self.approval_policy()
        self._constrain_choice(
            "approvals_reviewer", self.req.get("allowed_approvals_reviewers"), REVIEWERS,
            "allowed_approvals_reviewers", preferred="user",
        )
        self.permissions()
        self.network()
        self.deny_read()
        self.telemetry()
        self.login()
        for key, order in (("exec_boundary", ("all", "top", "off")),
                           ("exec_boundary_unavailable", ("refuse", "warn"))):
            self._constrain_choice(f"rules.{key}", self.req.get(f"rules.allowed_{key}"), order,
                                   f"rules.allowed_{key}")
        self.secrets()

    def approval_policy(self) -> None:
        allowed = self.req.get("allowed_approval_policies")
        value = self._get("approval_policy")
        if isinstance(value, dict):
            # The granular form refines on-request: it is permitted where on-request is.
            if allowed is not None and "on-request" not in allowed:
                self._constrain_choice(
                    "approval_policy", allowed, APPROVAL_POLICIES, "allowed_approval_policies",
                    current="granular",
                )
            elif allowed is not None:
                self.constraints["approval_policy"] = Constraint(
                    "approval_policy", self.req.source_of("allowed_approval_policies"),
                    tuple(allowed), "granular form counts as on-request",
                )
            return
        self._constrain_choice(
            "approval_policy", allowed, APPROVAL_POLICIES, "allowed_approval_policies"
        )

    def permissions(self) -> None:
        req_default = self.req.get("default_permissions")
        origin = self.origins.get("default_permissions")
        if req_default and (origin is None or origin.layer == "default"):
            self._set("default_permissions", req_default, self.req.source_of("default_permissions"))
        allowed = allowed_profiles(self.req.get("allowed_permission_profiles"))
        if allowed is None:
            return
        order = [":read-only", ":workspace", ":danger-full-access"]
        order += [p for p in allowed if p not in order]
        preferred = req_default if req_default in allowed else (
            ":read-only" if ":read-only" in allowed else None
        )
        self._constrain_choice(
            "default_permissions", allowed, order, "allowed_permission_profiles", preferred
        )

    def network(self) -> None:
        managed_only = bool(self.req.get("network.managed_domains_only"))
        managed = self.req.get("network.domains", {}) or {}
        targets = [("network",)] + [
            ("permissions", name, "network") for name in (self._get("permissions") or {})
        ]
        for prefix in targets:
            key = ".".join(prefix) if prefix[0] == "network" else dotted(prefix)
            table: Any = self.values
            for p in prefix:
                table = table.get(p) if isinstance(table, dict) else None
            if not isinstance(table, dict):
                continue
            domains = table.get("domains")
            if isinstance(domains, dict) and managed_only:
                dropped = [d for d, dec in domains.items() if dec != "deny"]
                for d in dropped:
                    del domains[d]
                    self.origins.pop(dotted((*prefix, "domains", d)), None)
                if dropped:
                    self.warnings.append(
                        f"ignoring {len(dropped)} user allow entr"
                        f"{'y' if len(dropped) == 1 else 'ies'} in `{key}.domains` "
                        f"({', '.join(sorted(dropped)[:5])}): `network.managed_domains_only` "
                        f"in {self.req.source_of('network.managed_domains_only')}"
                    )
            if managed_only and prefix[0] == "network" and table.get("allow_local"):
                table["allow_local"] = []
                self.warnings.append(
                    "ignoring user `network.allow_local`: `network.managed_domains_only` in "
                    f"{self.req.source_of('network.managed_domains_only')}"
                )
        if managed:
            net = self.values.setdefault("network", {})
            doms = net.setdefault("domains", {})
            for d, dec in managed.items():
                if doms.get(d) == "deny" and dec != "deny":
                    continue  # a user may narrow further
                doms[d] = dec
                self.origins[dotted(("network", "domains", d))] = Origin(
                    REQ, self.req.source_of(dotted(("network", "domains", d)))
                )
        if managed_only:
            self.constraints["network.domains"] = Constraint(
                "network.domains", self.req.source_of("network.managed_domains_only"), (),
                "managed domains only: user allow entries ignored",
            )
            if self.req.get("network.allow_local"):
                self._set("network.allow_local", list(self.req.get("network.allow_local")),
                          self.req.source_of("network.allow_local"))

    def deny_read(self) -> None:
        req_paths = self.req.deny_read
        if not req_paths:
            return
        current = list(self._get("filesystem.deny_read") or [])
        merged = current + [p for p in req_paths if p not in current]
        self.values.setdefault("filesystem", {})["deny_read"] = merged
        self.constraints["filesystem.deny_read"] = Constraint(
            "filesystem.deny_read", self.req.source_of("filesystem.deny_read"),
            tuple(req_paths), "requirements paths are always added",
        )

    def telemetry(self) -> None:
        tier = self.req.get("telemetry.content_tier")
        if tier is not None:
            cur = self._get("telemetry.content_tier")
            src = self.req.source_of("telemetry.content_tier")
            if cur != tier:
                if "telemetry.content_tier" in self.explicit:
                    raise RequirementsError(
                        f"{self.explicit['telemetry.content_tier']} is not allowed: "
                        f"`telemetry.content_tier` is forced to {tier} by {src}"
                    )
                if self.origins.get("telemetry.content_tier", Origin("default")).layer != "default":
                    self.warnings.append(
                        f"`telemetry.content_tier` = {cur} from "
                        f"{self._where('telemetry.content_tier')} is overridden to {tier} by {src}"
                    )
            self._set("telemetry.content_tier", tier, src)
            self.constraints["telemetry.content_tier"] = Constraint(
                "telemetry.content_tier", src, (str(tier),), "forced"
            )
        exporter = self.req.get("telemetry.exporter")
        if exporter:
            src = self.req.source_of("telemetry.exporter")
            self._set("telemetry.exporter", dict(exporter), src)
            self.constraints["telemetry.exporter"] = Constraint(
                "telemetry.exporter", src, (), "forced exporter"
            )

    def secrets(self) -> None:
        """``secrets.broker.required``: the broker cannot be turned off."""
        if not self.req.get("secrets.broker.required"):
            return
        key, src = "secrets.broker.enabled", self.req.source_of("secrets.broker.required")
        if self._get(key) is False:
            if key in self.explicit:
                raise RequirementsError(f"{self.explicit[key]} is not allowed: the credential "
                                        f"broker is required by {src}")
            self.warnings.append(f"`{key}` = false from {self._where(key)} is overridden: "
                                 f"the credential broker is required by {src}")
        self._set(key, True, src)
        self.constraints[key] = Constraint(key, src, ("true",), "forced")

    def login(self) -> None:
        forced = self.req.get("login.forced_method")
        if forced:
            self._constrain_choice("login.method", [forced], [forced], "login.forced_method",
                                   current=self._get("login.method") or forced)
            self._set("login.method", forced, self.req.source_of("login.forced_method"))
        ws = self.req.get("login.forced_workspace_id")
        if ws:
            allowed = [ws] if isinstance(ws, str) else list(ws)
            cur = self._get("login.workspace_id")
            self._constrain_choice("login.workspace_id", allowed, allowed,
                                   "login.forced_workspace_id", current=cur or allowed[0])
            if cur not in allowed:
                self._set("login.workspace_id", allowed[0],
                          self.req.source_of("login.forced_workspace_id"))


def enforce(
    values: dict[str, Any],
    origins: dict[str, Origin],
    req: Requirements,
    explicit: dict[str, str],
) -> tuple[dict[str, Constraint], list[str]]:
    e = Enforcer(values, origins, req, explicit)
    e.run()
    return e.constraints, e.warnings
