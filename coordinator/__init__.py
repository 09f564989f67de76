"""Coordinator: Flower ServerApp, secure aggregation, node-level DP, federation ledger."""
