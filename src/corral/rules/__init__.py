"""corral.rules (see ARCHITECTURE.md)."""
