"""The federation protocol that the node and the coordinator share.

The federation protocol the node and the coordinator share: wire names, record
packing, and the one round-settings type (which writes and reads its own record) that the
run configuration extends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from federation.contribution_endorsement import (
        ENDORSEMENT_DOMAIN,
        EndorsementBinding,
        EndorseRequest,
        check_decrypt_request,
        check_endorse_request,
        contribution_set_digest,
        verify_endorsement,
    )
    from federation.contribution_log import (
        CONTRIBUTION_LOG_FILE,
        ContributionLog,
        ContributionRecord,
    )
    from federation.contributions import (
        CONTRIBUTION_DOMAIN,
        ContributionBinding,
        ContributionField,
        DecryptionRefusedError,
        DecryptRequest,
        SignedContribution,
        check_contribution_set,
        ciphertext_digest,
        list_field,
        min_signers,
        scalar_field,
        verify_contribution,
    )
    from federation.node_privacy import DEFAULT_MAX_NOISE_SHARES, NodePrivacy, RoundRefusedError
    from federation.record_count_slot import (
        SLOT_FRACTION,
        records_from_slot,
        slot_value,
        split_clip,
        uses_count_slot,
    )
    from federation.records import CkksField, flatten, unflatten
    from federation.round_settings import RecordValue, RoundSettings, field_key, server_round_of
    from federation.run_config import FederationConfig
    from federation.secaggplus_params import (
        DEFAULT_MAX_WEIGHT,
        DEFAULT_MODULUS_RANGE,
        DEFAULT_QUANTIZATION_RANGE,
        SECAGGPLUS,
        UNCLIPPED_CLIPPING_RANGE,
        SecAggPlusParams,
        check_config,
        quantization_tolerance,
    )
    from federation.wire import (
        SERVER_ROUND_KEY,
        AggregationMode,
        ContentKey,
        MetricKey,
        NodeConfigKey,
        WeightingMode,
        as_bytes_list,
        as_float,
        as_int,
    )

_SUBMODULE: dict[str, str] = {
    "AggregationMode": "wire",
    "CONTRIBUTION_DOMAIN": "contributions",
    "CONTRIBUTION_LOG_FILE": "contribution_log",
    "CkksField": "records",
    "ContentKey": "wire",
    "ContributionBinding": "contributions",
    "ContributionField": "contributions",
    "ContributionLog": "contribution_log",
    "ContributionRecord": "contribution_log",
    "DEFAULT_MAX_NOISE_SHARES": "node_privacy",
    "DEFAULT_MAX_WEIGHT": "secaggplus_params",
    "DEFAULT_MODULUS_RANGE": "secaggplus_params",
    "DEFAULT_QUANTIZATION_RANGE": "secaggplus_params",
    "DecryptRequest": "contributions",
    "DecryptionRefusedError": "contributions",
    "ENDORSEMENT_DOMAIN": "contribution_endorsement",
    "EndorseRequest": "contribution_endorsement",
    "EndorsementBinding": "contribution_endorsement",
    "FederationConfig": "run_config",
    "MetricKey": "wire",
    "NodeConfigKey": "wire",
    "NodePrivacy": "node_privacy",
    "RecordValue": "round_settings",
    "RoundRefusedError": "node_privacy",
    "RoundSettings": "round_settings",
    "SECAGGPLUS": "secaggplus_params",
    "SERVER_ROUND_KEY": "wire",
    "SLOT_FRACTION": "record_count_slot",
    "SecAggPlusParams": "secaggplus_params",
    "SignedContribution": "contributions",
    "UNCLIPPED_CLIPPING_RANGE": "secaggplus_params",
    "WeightingMode": "wire",
    "as_bytes_list": "wire",
    "as_float": "wire",
    "as_int": "wire",
    "check_config": "secaggplus_params",
    "check_contribution_set": "contributions",
    "check_decrypt_request": "contribution_endorsement",
    "check_endorse_request": "contribution_endorsement",
    "ciphertext_digest": "contributions",
    "contribution_set_digest": "contribution_endorsement",
    "field_key": "round_settings",
    "flatten": "records",
    "list_field": "contributions",
    "min_signers": "contributions",
    "quantization_tolerance": "secaggplus_params",
    "records_from_slot": "record_count_slot",
    "scalar_field": "contributions",
    "server_round_of": "round_settings",
    "slot_value": "record_count_slot",
    "split_clip": "record_count_slot",
    "unflatten": "records",
    "uses_count_slot": "record_count_slot",
    "verify_contribution": "contributions",
    "verify_endorsement": "contribution_endorsement",
}

__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

__all__ = [
    "CONTRIBUTION_DOMAIN",
    "CONTRIBUTION_LOG_FILE",
    "DEFAULT_MAX_NOISE_SHARES",
    "DEFAULT_MAX_WEIGHT",
    "DEFAULT_MODULUS_RANGE",
    "DEFAULT_QUANTIZATION_RANGE",
    "ENDORSEMENT_DOMAIN",
    "SECAGGPLUS",
    "SERVER_ROUND_KEY",
    "SLOT_FRACTION",
    "UNCLIPPED_CLIPPING_RANGE",
    "AggregationMode",
    "CkksField",
    "ContentKey",
    "ContributionBinding",
    "ContributionField",
    "ContributionLog",
    "ContributionRecord",
    "DecryptRequest",
    "DecryptionRefusedError",
    "EndorseRequest",
    "EndorsementBinding",
    "FederationConfig",
    "MetricKey",
    "NodeConfigKey",
    "NodePrivacy",
    "RecordValue",
    "RoundRefusedError",
    "RoundSettings",
    "SecAggPlusParams",
    "SignedContribution",
    "WeightingMode",
    "as_bytes_list",
    "as_float",
    "as_int",
    "check_config",
    "check_contribution_set",
    "check_decrypt_request",
    "check_endorse_request",
    "ciphertext_digest",
    "contribution_set_digest",
    "field_key",
    "flatten",
    "list_field",
    "min_signers",
    "quantization_tolerance",
    "records_from_slot",
    "scalar_field",
    "server_round_of",
    "slot_value",
    "split_clip",
    "unflatten",
    "uses_count_slot",
    "verify_contribution",
    "verify_endorsement",
]
