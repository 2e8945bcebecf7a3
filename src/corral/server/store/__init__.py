"""The store: one repository interface (``base.Store``), SQLite and PostgreSQL engines."""
