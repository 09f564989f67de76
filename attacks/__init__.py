"""Inversion, membership-inference, attribute and bias audits, and the compliance report."""

from attacks.base import AttackReport, Protection

__all__ = ["AttackReport", "Protection"]
