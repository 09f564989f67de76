"""The federation protocol that the node and the coordinator share.

The federation protocol the node and the coordinator share: wire names, record
packing, and the one round-settings type (which writes and reads its own record) that the
run configuration extends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from federation.node_privacy import DEFAULT_MAX_NOISE_SHARES, NodePrivacy, RoundRefusedError
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
        as_bytes_list,
        as_float,
        as_int,
    )

_SUBMODULE: dict[str, str] = {
    "DEFAULT_MAX_NOISE_SHARES": "node_privacy",
    "NodePrivacy": "node_privacy",
    "RoundRefusedError": "node_privacy",
    "AggregationMode": "wire",
    "CkksField": "records",
    "ContentKey": "wire",
    "DEFAULT_MAX_WEIGHT": "secaggplus_params",
    "DEFAULT_MODULUS_RANGE": "secaggplus_params",
    "DEFAULT_QUANTIZATION_RANGE": "secaggplus_params",
    "FederationConfig": "run_config",
    "MetricKey": "wire",
    "NodeConfigKey": "wire",
    "RecordValue": "round_settings",
    "RoundSettings": "round_settings",
    "SECAGGPLUS": "secaggplus_params",
    "SERVER_ROUND_KEY": "wire",
    "SecAggPlusParams": "secaggplus_params",
    "UNCLIPPED_CLIPPING_RANGE": "secaggplus_params",
    "as_bytes_list": "wire",
    "as_float": "wire",
    "as_int": "wire",
    "check_config": "secaggplus_params",
    "field_key": "round_settings",
    "flatten": "records",
    "quantization_tolerance": "secaggplus_params",
    "server_round_of": "round_settings",
    "unflatten": "records",
}

__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

__all__ = [
    "DEFAULT_MAX_NOISE_SHARES",
    "DEFAULT_MAX_WEIGHT",
    "DEFAULT_MODULUS_RANGE",
    "DEFAULT_QUANTIZATION_RANGE",
    "SECAGGPLUS",
    "SERVER_ROUND_KEY",
    "UNCLIPPED_CLIPPING_RANGE",
    "AggregationMode",
    "CkksField",
    "ContentKey",
    "FederationConfig",
    "MetricKey",
    "NodeConfigKey",
    "NodePrivacy",
    "RecordValue",
    "RoundRefusedError",
    "RoundSettings",
    "SecAggPlusParams",
    "as_bytes_list",
    "as_float",
    "as_int",
    "check_config",
    "field_key",
    "flatten",
    "quantization_tolerance",
    "server_round_of",
    "unflatten",
]
