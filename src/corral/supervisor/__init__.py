"""corral.supervisor (see ARCHITECTURE.md)."""
