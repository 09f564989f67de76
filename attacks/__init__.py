"""Inversion, membership-inference and bias audits, and the compliance report (planned)."""
