"""The policy schema: privacy, access and audit rules as validated pydantic models.

Every field carries a ``description`` that states what is expected; the loader quotes
it when a policy file is wrong, so the schema is the single source of those messages.
Models are strict (no string-to-number coercion), frozen and reject unknown keys.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = [
    "AGGREGATION_MODES",
    "OBSERVERS",
    "QUERY_KINDS",
    "AccessPolicy",
    "AggregationMode",
    "AuditThresholds",
    "ObserverName",
    "Policy",
    "PolicyMeta",
    "PrivacyPolicy",
    "QueryKind",
]

AggregationMode = Literal["secagg+", "ckks", "plaintext"]
QueryKind = Literal["text", "vector"]
AGGREGATION_MODES: tuple[str, ...] = ("secagg+", "ckks", "plaintext")
QUERY_KINDS: tuple[str, ...] = ("text", "vector")
ObserverName = Literal["outsider", "partner", "coordinator", "fellow-member"]
OBSERVERS: tuple[str, ...] = ("outsider", "partner", "coordinator", "fellow-member")
"""The observers a privacy guarantee can be stated for (``privacy.observers.Observer``)."""
PLAINTEXT_AGGREGATION = "plaintext"

_CONFIG = ConfigDict(extra="forbid", strict=True, frozen=True)


def _unique(values: list[str]) -> list[str]:
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise ValueError(f"duplicate entries {duplicates}")
    return values


class PolicyMeta(BaseModel):
    """The ``[policy]`` table: what this policy is."""

    model_config = _CONFIG

    name: str = Field(min_length=1, description='a non-empty string, e.g. "consortium-default"')
    version: str = Field(min_length=1, description='a non-empty version string, e.g. "1.0"')
    description: str = Field(description="a string saying what the policy is for")


class PrivacyPolicy(BaseModel):
    """The ``[privacy]`` table: the formal guarantee federated training must give."""

    model_config = _CONFIG

    max_epsilon_per_node: float = Field(
        gt=0, description="a number > 0: the largest DP epsilon one node may spend, e.g. 8.0"
    )
    target_delta: float = Field(
        gt=0, lt=1, description="a number strictly between 0 and 1, e.g. 1e-5"
    )
    privacy_unit: str = Field(
        min_length=1,
        description='a non-empty string naming what DP protects, e.g. "one interaction record"',
    )
    require_secure_aggregation: bool = Field(description="true or false")
    allowed_aggregation_modes: list[AggregationMode] = Field(
        min_length=1,
        description='a non-empty list drawn from "secagg+", "ckks", "plaintext"',
    )
    node_level_dp: bool = Field(description="true or false")
    # Optional (default: all) so that policy files written before it still load.
    observers: list[ObserverName] = Field(
        default_factory=lambda: list(OBSERVERS),  # type: ignore[arg-type]
        min_length=1,
        description='a non-empty list drawn from "outsider", "partner", "coordinator", '
        '"fellow-member": who the epsilon and MIA limits must hold against (default all)',
    )

    @field_validator("observers")
    @classmethod
    def _observers_unique(cls, value: list[str]) -> list[str]:
        return _unique(value)

    @field_validator("allowed_aggregation_modes")
    @classmethod
    def _modes_valid(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("require_secure_aggregation") and PLAINTEXT_AGGREGATION in value:
            raise ValueError(
                'require_secure_aggregation = true contradicts allowing "plaintext"; remove '
                '"plaintext" or set require_secure_aggregation = false'
            )
        return _unique(value)


class AccessPolicy(BaseModel):
    """The ``[access]`` table: what a partner may ask of the secure index."""

    model_config = _CONFIG

    max_top_k: int = Field(ge=1, description="an integer >= 1: the largest k per query, e.g. 100")
    max_requests_per_minute: float = Field(
        gt=0, description="a number > 0: sustained requests per minute per partner, e.g. 600"
    )
    allowed_query_kinds: list[QueryKind] = Field(
        min_length=1, description='a non-empty list drawn from "text", "vector"'
    )
    require_encrypted_collections_for_partners: bool = Field(description="true or false")
    audit_log_required: bool = Field(description="true or false")

    @field_validator("allowed_query_kinds")
    @classmethod
    def _kinds_unique(cls, value: list[str]) -> list[str]:
        return _unique(value)


_FRACTION = "a number between 0 and 1"


class AuditThresholds(BaseModel):
    """The ``[audit]`` table: pass/fail thresholds of the privacy and bias audit."""

    model_config = _CONFIG

    max_inversion_f1: float = Field(
        ge=0, le=1, description=f"{_FRACTION}: highest content-word F1 of inversion, e.g. 0.1"
    )
    min_attack_strength_f1: float = Field(
        ge=0, le=1, description=f"{_FRACTION}: F1 the attack must reach on raw embeddings"
    )
    max_mia_auc: float = Field(
        ge=0, le=1, description=f"{_FRACTION}: highest membership-inference AUC, e.g. 0.55"
    )
    min_mia_control_auc: float = Field(
        ge=0, le=1, description=f"{_FRACTION}: AUC the attack must reach on an overfit control"
    )
    max_attribute_advantage: float = Field(
        ge=0, le=1, description=f"{_FRACTION}: highest attribute-inference advantage, e.g. 0.1"
    )
    max_abs_effect_size: float = Field(
        ge=0, description="a number >= 0: largest |Cohen's d| of a bias test, e.g. 0.8"
    )
    max_epsilon: float = Field(gt=0, description="a number > 0: largest epsilon of any node")
    max_delta: float = Field(gt=0, lt=1, description="a number strictly between 0 and 1")
    max_ndcg10_drop: float = Field(
        ge=0, le=100, description="a number of nDCG@10 points between 0 and 100, e.g. 2.0"
    )
    # Optional (default 1.0) so that policy files written before it still load.
    min_index_encrypted_fraction: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description=f"{_FRACTION}: share of index collection files that must be encrypted, "
        "e.g. 1.0",
    )
    # Optional (default 0.3) so that policy files written before it still load.
    max_score_reconstruction_cosine: float = Field(
        default=0.3,
        ge=-1,
        le=1,
        description="highest mean cosine a partner's score reconstruction (2,000 probes of "
        "the deployed gateway) may reach, e.g. 0.3",
    )

    @field_validator("min_attack_strength_f1")
    @classmethod
    def _strength_above_limit(cls, value: float, info: ValidationInfo) -> float:
        limit = info.data.get("max_inversion_f1")
        if limit is not None and value <= limit:
            raise ValueError(
                f"must be greater than max_inversion_f1 ({limit}), otherwise an attack too "
                "weak to be informative could still make the audit pass"
            )
        return value

    @field_validator("min_mia_control_auc")
    @classmethod
    def _control_above_limit(cls, value: float, info: ValidationInfo) -> float:
        limit = info.data.get("max_mia_auc")
        if limit is not None and value <= limit:
            raise ValueError(
                f"must be greater than max_mia_auc ({limit}), otherwise the control cannot "
                "show that the membership attack works"
            )
        return value


class Policy(BaseModel):
    """A complete policy file: ``[policy]``, ``[privacy]``, ``[access]`` and ``[audit]``."""

    model_config = _CONFIG

    policy: PolicyMeta = Field(description="a [policy] table with name, version, description")
    privacy: PrivacyPolicy = Field(description="a [privacy] table")
    access: AccessPolicy = Field(description="an [access] table")
    audit: AuditThresholds = Field(description="an [audit] table of thresholds")
