"""Settings of the index services, read once at start from the environment.

Every variable has the prefix ``FEDEMBED_INDEX_`` (e.g. ``FEDEMBED_INDEX_DATA_DIR``).
Secrets (the admin token, the store token) have no default: a service refuses to start
without them, or with one shorter than 32 characters. Every role that runs the gateway
needs a KEK (``kek_file`` or ``FEDEMBED_INDEX_KEK``): it keys the audit log's head anchor.
"""

from __future__ import annotations

import enum
import re
from pathlib import Path

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from embedding_core.encoder import DEFAULT_ENCODER_BACKEND, check_backend
from secure_index.service.service_tls import store_link_problem

__all__ = [
    "CKKS_DIR",
    "STORE_DIR",
    "ServiceRole",
    "ServiceSettings",
    "audit_path",
    "credentials_path",
]

MIB = 1 << 20
MIN_TOKEN_CHARS = 32  # service tokens: at least 32 characters (192 bits as token_urlsafe)
TOKEN_CHARS = re.compile(r"[A-Za-z0-9._~+/-]+=*")  # RFC 6750 b64token: sent as a bearer token
MAKE_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
STORE_DIR = "store"  # the index store's folder inside a service data dir
CKKS_DIR = "ckks"  # the CKKS collections' folder inside the store's folder


class ServiceRole(enum.StrEnum):
    """Which service a process runs."""

    ALL = "all"  # gateway and store in one process (DCPE keys and ciphertexts together)
    GATEWAY = "gateway"  # trusted: partner/node API, embeds and DCPE-encrypts queries
    STORE = "store"  # untrusted host: the encrypted index, internal API only


class ServiceSettings(BaseSettings):
    """Configuration of ``fedembed index serve``."""

    model_config = SettingsConfigDict(
        env_prefix="FEDEMBED_INDEX_", extra="ignore", hide_input_in_errors=True
    )

    role: ServiceRole = ServiceRole.ALL
    data_dir: Path = Field(description="Where the store keeps its encrypted files (store/all).")
    tenant: str = Field(default="consortium", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    admin_token: SecretStr = Field(description="Bearer token of the admin API; no default.")
    kek_file: Path | None = Field(
        default=None,
        description="KEK key file; else the FEDEMBED_INDEX_KEK variable (the store's files, "
        "the gateway's audit anchor).",
    )
    state_anchor: Path | None = Field(
        default=None,
        description="The store's state anchor, outside the data dir (store/all); default "
        "beside the KEK file; with the FEDEMBED_INDEX_KEK variable, none unless set.",
    )
    store_url: str | None = Field(default=None, description="The store's URL (gateway role).")
    store_token: SecretStr | None = Field(
        default=None, description="Bearer token between gateway and store (split roles)."
    )
    store_ca: Path | None = Field(
        default=None,
        description="CA certificate the gateway trusts for an https:// store (else the "
        "system trust store).",
    )
    tls_cert: Path | None = Field(default=None, description="Serve HTTPS with this certificate.")
    tls_key: Path | None = Field(
        default=None, description="The certificate's private key (a secret file, mode 0600)."
    )
    dcpe_key_file: Path | None = Field(default=None, description="DCPE keyring (gateway/all).")
    ckks_key_file: Path | None = Field(
        default=None, description="The gateway's CKKS search key (gateway/all): CKKS collections."
    )
    model_path: str | None = Field(default=None, description="Encoder folder; default bundled.")
    encoder_backend: str = Field(
        default=DEFAULT_ENCODER_BACKEND,
        description="How the gateway embeds text queries: torch, onnx or onnx-int8. "
        "Collections of another encoder space refuse its text queries.",
    )
    adapter_path: Path | None = Field(default=None, description="Query-side adapter folder.")
    text_queries: bool = True
    suspend_on_probing: bool = Field(
        default=True,
        description="Suspend a partner key whose queries look like probing (else only "
        "log and audit the alert).",
    )
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

    @field_validator("admin_token", "store_token")
    @classmethod
    def _check_token(cls, token: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """A service token must be long and random: a short or empty one is guessable."""
        if token is None:
            return None
        value, variable = token.get_secret_value(), f"FEDEMBED_INDEX_{str(info.field_name).upper()}"
        if len(value) < MIN_TOKEN_CHARS:
            problem = f"{variable} is {len(value)} characters long"
        elif not TOKEN_CHARS.fullmatch(value):
            problem = f"{variable} holds characters a bearer token cannot carry (spaces, quotes)"
        else:
            return token
        raise ValueError(
            f"{problem}; expected a random token of at least {MIN_TOKEN_CHARS} characters "
            f"(letters, digits, - . _ ~ + /); make one with {MAKE_TOKEN}"
        )

    @field_validator("encoder_backend")
    @classmethod
    def _check_backend(cls, backend: str) -> str:
        """FEDEMBED_INDEX_ENCODER_BACKEND: one of the encoder backends."""
        return check_backend(backend)

    @model_validator(mode="after")
    def _check_role(self) -> ServiceSettings:
        if self.role is ServiceRole.GATEWAY and not (self.store_url and self.store_token):
            raise ValueError(
                "the gateway role needs FEDEMBED_INDEX_STORE_URL and FEDEMBED_INDEX_STORE_TOKEN"
            )
        if self.role is ServiceRole.STORE and self.store_token is None:
            raise ValueError("the store role needs FEDEMBED_INDEX_STORE_TOKEN")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError(
                "HTTPS needs both FEDEMBED_INDEX_TLS_CERT and FEDEMBED_INDEX_TLS_KEY "
                "(--tls-cert and --tls-key)"
            )
        if self.role is ServiceRole.GATEWAY and self.store_url:
            problem = store_link_problem(self.store_url, self.store_ca)
            if problem is not None:
                raise ValueError(problem)
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
