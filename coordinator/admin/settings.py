"""Settings of ``fedembed coordinator admin serve``, read once at start.

Every variable has the prefix ``FEDEMBED_ADMIN_`` (``FEDEMBED_ADMIN_HOME`` ...). The
gateway's admin token (for partner keys and model promotion) is read from
``FEDEMBED_INDEX_ADMIN_TOKEN``, the variable the gateway itself reads; it never goes on
a command line.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from coordinator.admin.home import ConsortiumHome

__all__ = ["DEFAULT_CONNECTION", "AdminSettings"]

DEFAULT_CONNECTION = "fedembed"
"""The ``[superlink.NAME]`` connection the admin API writes into its FLWR_HOME."""


class AdminSettings(BaseSettings):
    """Configuration of the admin API."""

    model_config = SettingsConfigDict(
        env_prefix="FEDEMBED_ADMIN_", extra="ignore", hide_input_in_errors=True
    )

    home: Path = Field(description="The consortium home folder (kits/, runs/, models/ ...).")
    host: str = "127.0.0.1"
    port: int = Field(default=8300, ge=0, le=65535)
    superlink_control: str = Field(
        default="127.0.0.1:9093",
        description="host:port of the SuperLink's Control API (`flwr` talks to it).",
    )
    project_dir: Path = Field(
        default=Path(__file__).resolve().parents[2],
        description="The Flower App folder `flwr run` submits (holds [tool.flwr.app]).",
    )
    data_dir: Path | None = Field(
        default=None,
        description="Datasets for the central evaluation (else FEDEMBED_DATA_DIR).",
    )
    policy: Path | None = Field(default=None, description="The consortium policy (TOML).")
    gateway_url: str | None = Field(default=None, description="The query gateway's URL.")
    gateway_ca: Path | None = Field(
        default=None, description="CA certificate of an https:// gateway (the kit's ca.crt)."
    )
    gateway_admin_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("FEDEMBED_INDEX_ADMIN_TOKEN"),
        description="The gateway's admin token (FEDEMBED_INDEX_ADMIN_TOKEN).",
    )
    python: str = Field(
        default=sys.executable, description="Interpreter for audit jobs (`-m fedembed audit`)."
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="A bearer token that may read /metrics only (FEDEMBED_ADMIN_METRICS_TOKEN), "
        "for a Prometheus scraper; any admin API token reads /metrics too.",
    )
    trail_key: SecretStr | None = Field(
        default=None,
        description="The audit trail's anchor key (FEDEMBED_ADMIN_TRAIL_KEY); else the 0600 "
        "file admin/trail.key, created on first start.",
    )

    @property
    def consortium(self) -> ConsortiumHome:
        """The home folder's layout."""
        return ConsortiumHome(self.home)
