"""Code that runs *inside* the sandbox, next to the agent: standard library only, importing
nothing from corral outside this package (checked by import-linter), so it starts fast and
needs none of the supervisor's state.

    agent process (sandbox)                      supervisor (outside)
    ├─ hook_main  python -m corral.integrations.hook_main AGENT (alias)
    │   └─ relay  the hook call as it came ──────────────────────► supervisor.api.SessionAPI
    │             (which runs ``hooks`` on it and sends back the answer to print)
    │   └─ hooks  only when no supervisor answers: the refusal in the agent's format
    └─ client  one session API request over CORRAL_SUPERVISOR_SOCKET (other callers)
    └─ (the sandbox's first process: corral.sandbox.proxyinit, started as
        ``python -I -S <path>``, bridges loopback ports to the proxy and session sockets)

``corral.sandbox.proxyinit`` and the stand-alone bridge ``corral.netproxy.bridge`` run inside
too; they stay in their packages for now (see docs/architecture.md).
"""
