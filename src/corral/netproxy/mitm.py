"""HTTPS interception for limited mode (placeholder until the CA lands)."""
