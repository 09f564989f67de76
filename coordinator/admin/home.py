"""The consortium's folder on the coordinator host, as the admin API lays it out.

One folder holds everything the control plane writes; nothing is written into the
working tree::

    <home>/kits/          `fedembed coordinator provision --out <home>/kits` (admin/,
                          coordinator/, gateway/, nodes/<member>/); the CA key is in admin/
    <home>/members/       one record per enrolled or revoked member
    <home>/runs/<run>/    one folder per federation run, never reused (run.json, the
                          flwr log, federation_ledger.json, history.json, global_adapter/)
    <home>/models/        the model registry: versions/<n>/ and registry.json
    <home>/audit/         audit jobs and their reports
    <home>/admin/         the admin API's own state: hashed tokens, the audit trail
    <home>/flwr-home/     FLWR_HOME of the `flwr` CLI: config.toml names the SuperLink
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["ConsortiumHome"]


@dataclass(frozen=True)
class ConsortiumHome:
    """Paths inside a consortium home folder (nothing is created on construction)."""

    root: Path

    @property
    def kits(self) -> Path:
        """Provisioned kits: admin/, coordinator/, gateway/, nodes/<member>/."""
        return self.root / "kits"

    @property
    def coordinator_kit(self) -> Path:
        """The coordinator kit (authorised node keys, TLS, public CKKS context)."""
        return self.kits / "coordinator"

    @property
    def members(self) -> Path:
        """Member records (enrolled, revoked)."""
        return self.root / "members"

    @property
    def runs(self) -> Path:
        """One folder per federation run."""
        return self.root / "runs"

    @property
    def models(self) -> Path:
        """The model registry."""
        return self.root / "models"

    @property
    def audit(self) -> Path:
        """Audit jobs and reports."""
        return self.root / "audit"

    @property
    def state(self) -> Path:
        """The admin API's own state (tokens, audit trail)."""
        return self.root / "admin"

    @property
    def flwr_home(self) -> Path:
        """FLWR_HOME for the `flwr` CLI (config.toml with the SuperLink connection)."""
        return self.root / "flwr-home"
