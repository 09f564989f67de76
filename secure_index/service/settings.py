"""Settings of the index services, read once at start from the environment.

Every variable has the prefix ``FEDEMBED_INDEX_`` (e.g. ``FEDEMBED_INDEX_DATA_DIR``).
Secrets (the admin token, the store token) have no default: a service refuses to start
without them.
"""

from __future__ import annotations

import enum
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "CKKS_DIR",
    "STORE_DIR",
    "ServiceRole",
    "ServiceSettings",
    "audit_path",
    "credentials_path",
]

MIB = 1 << 20
STORE_DIR = "store"  # the index store's folder inside a service data dir
CKKS_DIR = "ckks"  # the CKKS collections' folder inside the store's folder


class ServiceRole(enum.StrEnum):
    """Which service a process runs."""

    ALL = "all"  # gateway and store in one process (DCPE keys and ciphertexts together)
    GATEWAY = "gateway"  # trusted: partner/node API, embeds and DCPE-encrypts queries
    STORE = "store"  # untrusted host: the encrypted index, internal API only


class ServiceSettings(BaseSettings):
    """Configuration of ``fedembed index serve``."""

    model_config = SettingsConfigDict(env_prefix="FEDEMBED_INDEX_", extra="ignore")

    role: ServiceRole = ServiceRole.ALL
    data_dir: Path = Field(description="Where the store keeps its encrypted files (store/all).")
    tenant: str = Field(default="consortium", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    admin_token: SecretStr = Field(description="Bearer token of the admin API; no default.")
    kek_file: Path | None = Field(
        default=None, description="KEK key file; else the FEDEMBED_INDEX_KEK variable."
    )
    store_url: str | None = Field(default=None, description="The store's URL (gateway role).")
    store_token: SecretStr | None = Field(
        default=None, description="Bearer token between gateway and store (split roles)."
    )
    dcpe_key_file: Path | None = Field(default=None, description="DCPE keyring (gateway/all).")
    ckks_key_file: Path | None = Field(
        default=None, description="The gateway's CKKS search key (gateway/all): CKKS collections."
    )
    model_path: str | None = Field(default=None, description="Encoder folder; default bundled.")
    adapter_path: Path | None = Field(default=None, description="Query-side adapter folder.")
    text_queries: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8100, ge=0, le=65535)
    max_body_bytes: int = Field(default=8 * MIB, ge=1024)
    max_block_bytes: int = Field(
        default=256 * MIB, ge=1024, description="Bodies of CKKS block uploads (about 90 MiB)."
    )
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    max_k: int = Field(default=1000, ge=1)
    snapshot_records: int = Field(default=50_000, ge=1)
    snapshot_interval_s: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _check_role(self) -> ServiceSettings:
        if self.role is ServiceRole.GATEWAY and not (self.store_url and self.store_token):
            raise ValueError(
                "the gateway role needs FEDEMBED_INDEX_STORE_URL and FEDEMBED_INDEX_STORE_TOKEN"
            )
        if self.role is ServiceRole.STORE and self.store_token is None:
            raise ValueError("the store role needs FEDEMBED_INDEX_STORE_TOKEN")
        return self

    @property
    def credentials_path(self) -> Path:
        """SQLite file of partner and node keys (hashed)."""
        return credentials_path(self.data_dir)

    @property
    def audit_path(self) -> Path:
        """The hash-chained audit log."""
        return audit_path(self.data_dir)


def credentials_path(data_dir: Path) -> Path:
    """SQLite file of partner and node keys (hashed) in a service data dir."""
    return data_dir / "credentials.sqlite"


def audit_path(data_dir: Path) -> Path:
    """The hash-chained audit log in a service data dir."""
    return data_dir / "audit" / "audit.jsonl"
