"""Code that runs *inside* the sandbox, next to the agent: standard library only, importing
nothing from corral outside this package (checked by import-linter), so it starts fast and
needs none of the supervisor's state.

    agent process (sandbox)                      supervisor (outside)
    ├─ hook_main  python -m corral.integrations.hook_main AGENT (alias)
    │   └─ hooks  the agent's hook call -> a session API request -> the agent's format
    │       └─ client  one request over CORRAL_SUPERVISOR_SOCKET ──► supervisor.api.SessionAPI
    └─ (the sandbox's first process: corral.sandbox.proxyinit, started as
        ``python -I -S <path>``, bridges loopback ports to the proxy and session sockets)

``corral.sandbox.proxyinit`` and the stand-alone bridge ``corral.netproxy.bridge`` run inside
too; they stay in their packages for now (see docs/architecture.md).
"""
