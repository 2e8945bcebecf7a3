"""Enforced login: ``login.forced_method`` and ``login.forced_workspace_id`` from requirements.

``LoginRequirement`` is the plain data the requirements say (also what item 4's agent settings
carry to Codex and Claude Code); ``require_login`` refuses, in one line naming the requirement's
source, unless the user is signed in with that method to an allowed workspace: the ID token is
verified again (signature under the issuer's keys, issuer, audience, expiry; refreshed once
when expired) and its workspace claim compared.

Methods: ``oidc`` is corral's sign-in (``corral login``: the device authorization grant against
the organisation's issuer). Any other value is refused: corral cannot verify a sign-in it does
not perform, and failing open would hand the choice of account back to the user.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.config.enrolment import Identity, read_enrolment
from corral.errors import CorralError

METHODS = ("oidc",)
DEFAULT_CLAIM = "org_id"


class LoginRequired(CorralError):
    exit_code = 1


@dataclass(frozen=True)
class LoginRequirement:
    """What requirements force about signing in (None from ``login_requirement``: nothing)."""

    method: str | None  # login.forced_method
    workspaces: tuple[str, ...]  # login.forced_workspace_id (one or a list)
    workspace_claim: str  # the ID-token claim compared with them
    source: str  # where the requirement came from (file or bundle)


def login_requirement(cfg: Any, home: Path | None = None) -> LoginRequirement | None:
    req = cfg.requirements
    method = req.get("login.forced_method")
    ws = req.get("login.forced_workspace_id")
    if method is None and ws is None:
        return None
    workspaces = (ws,) if isinstance(ws, str) else tuple(str(w) for w in ws or ())
    claim = req.get("login.workspace_claim")
    if not claim and home is not None:
        try:
            enr = read_enrolment(home)
        except CorralError:
            enr = None
        claim = (enr.oidc.get("workspace_claim") if enr else None) or None
    key = "login.forced_method" if method is not None else "login.forced_workspace_id"
    return LoginRequirement(str(method) if method is not None else None, workspaces,
                            str(claim or DEFAULT_CLAIM), req.source_of(key))


def require_login(cfg: Any, home: Path) -> Identity | None:
    """None when nothing is forced; else the verified identity, or LoginRequired."""
    need = login_requirement(cfg, home)
    if need is None:
        return None
    from corral.fleet.oidc import LoginError, current

    what = " ".join(filter(None, (
        f"a sign-in with {need.method}" if need.method else "a sign-in",
        f"to workspace {' or '.join(need.workspaces)}" if need.workspaces else "")))
    if need.method is not None and need.method not in METHODS:
        raise LoginRequired("login", f"requirements ({need.source}) force login method "
                            f"{need.method!r}, which corral cannot verify (it signs in with "
                            f"{', '.join(METHODS)}): refusing to run agents")
    try:
        ident = current(cfg, home)
    except LoginError as exc:
        raise LoginRequired("login", f"requirements ({need.source}) need {what}: "
                            f"{exc.message}; refusing to run agents", hint=exc.hint) from None
    check_identity(need, ident)
    return ident


def check_identity(need: LoginRequirement, ident: Identity) -> None:
    """The method and workspace of a verified identity against the requirement."""
    if need.method is not None and ident.method != need.method:
        raise LoginRequired("login", f"signed in with {ident.method}, but requirements "
                            f"({need.source}) force {need.method}: refusing to run agents",
                            hint="corral login")
    if need.workspaces and ident.workspace not in need.workspaces:
        got = f"workspace {ident.workspace!r}" if ident.workspace else \
            f"no {need.workspace_claim} claim"
        raise LoginRequired("login", f"{ident.display} is signed in to {got}, but "
                            f"requirements ({need.source}) pin {need.workspace_claim} to "
                            f"{' or '.join(need.workspaces)}: refusing to run agents",
                            hint="corral logout, then corral login with an account of that "
                            "organisation")
