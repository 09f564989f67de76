"""The privacy and bias audit: attack the model and its protections, judge by policy.

:func:`run_audit` runs every attack of :mod:`attacks` against raw embeddings and each
protection the consortium could deploy, measures the utility each leaves, scans the
index folder for encryption at rest and the audit-log chain
(:func:`gather_index_evidence`), reads the release's bound on membership inference from
its manifest (:func:`release_auc_bound`), and judges the evidence with the policy
(:mod:`policies`); ``report`` renders the result. :class:`AuditInputs` names what is
audited and :class:`AuditConfig` how hard.

The names below load on first use (PEP 562): the attacks pull in torch and
scikit-learn, and the ``fedembed`` CLI, which registers ``fedembed audit`` from
:mod:`audit.cli`, should not pay for them on every command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from audit.auditor_data import AuditorData
    from audit.auditor_records import read_auditor_records
    from audit.config import DEFAULT_DELTA, DEFAULT_EPSILON, AuditConfig, AuditInputs
    from audit.full_audit import run_audit
    from audit.index_evidence import IndexDirectoryError, IndexEvidence, gather_index_evidence
    from audit.membership_bound import ReleaseBound, release_auc_bound

_SUBMODULE: dict[str, str] = {
    "DEFAULT_DELTA": "config",
    "DEFAULT_EPSILON": "config",
    "AuditConfig": "config",
    "AuditInputs": "config",
    "AuditorData": "auditor_data",
    "IndexDirectoryError": "index_evidence",
    "IndexEvidence": "index_evidence",
    "ReleaseBound": "membership_bound",
    "gather_index_evidence": "index_evidence",
    "read_auditor_records": "auditor_records",
    "release_auc_bound": "membership_bound",
    "run_audit": "full_audit",
}


__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

__all__ = [
    "DEFAULT_DELTA",
    "DEFAULT_EPSILON",
    "AuditConfig",
    "AuditInputs",
    "AuditorData",
    "IndexDirectoryError",
    "IndexEvidence",
    "ReleaseBound",
    "gather_index_evidence",
    "read_auditor_records",
    "release_auc_bound",
    "run_audit",
]
