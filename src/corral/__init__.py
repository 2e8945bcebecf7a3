"""corral: govern AI coding agents with a sandbox, command rules, approvals and an audit journal."""

__version__ = "0.1.0"
