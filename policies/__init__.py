"""Declarative privacy, access and audit policies (planned)."""
