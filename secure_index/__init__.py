"""Encrypted-at-rest vector index and the partner query endpoint (planned)."""
