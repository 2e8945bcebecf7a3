"""corral.server: the compliance log service (``corral server``).

Never imports the supervisor, the sandbox or the integrations (except the pure OTel mapping
functions of ``corral.integrations.otel_map``); shares only ``corral.telemetry``'s schema.
See docs/server.md.
"""
