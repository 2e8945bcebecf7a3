"""corral.sandbox (see ARCHITECTURE.md)."""
