"""The machine's side of a managed fleet (docs/fleet.md): enrolment with a corral server,
signing in to the organisation's identity provider, and enforcing the forced login.

Public surface: ``enroll`` (``corral enroll``), ``login`` / ``logout`` / ``current``
(``corral login``, ``logout``, ``whoami``), ``login_requirement`` / ``require_login`` (checked
by every session before an agent runs). The server-managed policy itself arrives through
``corral.config`` (the enrolment record and the signed-bundle mechanism); forwarding and the
periodic check-in through ``corral.forward``.
"""

from __future__ import annotations

from corral.fleet.device import enroll, fingerprint
from corral.fleet.enforce import LoginRequired, LoginRequirement, login_requirement, require_login
from corral.fleet.oidc import LoginError, current, login, logout

__all__ = ["LoginError", "LoginRequired", "LoginRequirement", "current", "enroll",
           "fingerprint", "login", "login_requirement", "logout", "require_login"]
