"""corral.telemetry (see ARCHITECTURE.md)."""
