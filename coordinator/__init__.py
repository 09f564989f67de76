"""Coordinator: Flower ServerApp, secure aggregation, node-level DP, privacy ledger (planned)."""
