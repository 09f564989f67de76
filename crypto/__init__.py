"""The crypto both sides use.

The crypto both sides use: CKKS (TenSEAL) for secure aggregation and encrypted search,
and DCPE (scale-and-perturb) for the index's query-side protection. Heavy modules load on
first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from embedding_core.lazy_exports import lazy_exports

if TYPE_CHECKING:
    from crypto.ckks_aggregation import (
        decrypt_sum,
        decrypt_vector,
        encrypt_vector,
        max_abs_sum,
        sum_encrypted,
    )
    from crypto.ckks_context import (
        TENSEAL_ERRORS,
        context_fingerprint,
        context_slots,
        is_private_context,
        load_context,
        make_contexts,
        slot_count,
    )
    from crypto.ckks_decryption_rounding import (
        GRID_BITS_ABOVE_SCALE,
        decryption_grid,
        round_decryption,
    )
    from crypto.ckks_parameters import MAX_COEFF_MODULUS_BITS, CkksError, CkksParameters, num_chunks
    from crypto.ckks_search import (
        COEFF_MODULUS_BITS,
        POLY_MODULUS_DEGREE,
        SCALE_BITS,
        BlockLayout,
        CkksDocumentEncryptor,
        CkksInnerProductScorer,
        EncryptedBlock,
        LoadedBlock,
        ciphertext_words,
    )
    from crypto.ckks_search_key import KEY_FILE_MAGIC, CkksSearchKey, load_ckks_key, save_ckks_key
    from crypto.contribution_signature import (
        ContributionSignatureError,
        ContributionSigner,
        verify_contribution_signature,
    )
    from crypto.dcpe import NONCE_BYTES, DcpeCiphertext, DcpeKey, ScaleAndPerturb, derive_coin_key
    from crypto.dcpe_keys import DcpeKeyring
    from crypto.errors import CryptoError, CryptoInputError, KeyManagementError
    from crypto.key_wrapping import (
        WRAP_MAGIC,
        KeyUnwrapError,
        seal,
        unseal,
    )
    from crypto.secret_files import (
        SECRET_FILE_MODE,
        SecretFileError,
        read_secret_file,
        require_secret_file,
        write_secret_file,
    )

_SUBMODULE: dict[str, str] = {
    "BlockLayout": "ckks_search",
    "COEFF_MODULUS_BITS": "ckks_search",
    "CkksDocumentEncryptor": "ckks_search",
    "CkksError": "ckks_parameters",
    "CkksInnerProductScorer": "ckks_search",
    "CkksParameters": "ckks_parameters",
    "CkksSearchKey": "ckks_search_key",
    "ContributionSignatureError": "contribution_signature",
    "ContributionSigner": "contribution_signature",
    "CryptoError": "errors",
    "CryptoInputError": "errors",
    "DcpeCiphertext": "dcpe",
    "DcpeKey": "dcpe",
    "DcpeKeyring": "dcpe_keys",
    "EncryptedBlock": "ckks_search",
    "GRID_BITS_ABOVE_SCALE": "ckks_decryption_rounding",
    "KEY_FILE_MAGIC": "ckks_search_key",
    "KeyManagementError": "errors",
    "KeyUnwrapError": "key_wrapping",
    "LoadedBlock": "ckks_search",
    "MAX_COEFF_MODULUS_BITS": "ckks_parameters",
    "NONCE_BYTES": "dcpe",
    "POLY_MODULUS_DEGREE": "ckks_search",
    "SCALE_BITS": "ckks_search",
    "SECRET_FILE_MODE": "secret_files",
    "ScaleAndPerturb": "dcpe",
    "SecretFileError": "secret_files",
    "TENSEAL_ERRORS": "ckks_context",
    "WRAP_MAGIC": "key_wrapping",
    "ciphertext_words": "ckks_search",
    "context_fingerprint": "ckks_context",
    "context_slots": "ckks_context",
    "decrypt_sum": "ckks_aggregation",
    "decrypt_vector": "ckks_aggregation",
    "decryption_grid": "ckks_decryption_rounding",
    "derive_coin_key": "dcpe",
    "encrypt_vector": "ckks_aggregation",
    "is_private_context": "ckks_context",
    "load_ckks_key": "ckks_search_key",
    "load_context": "ckks_context",
    "read_secret_file": "secret_files",
    "require_secret_file": "secret_files",
    "make_contexts": "ckks_context",
    "max_abs_sum": "ckks_aggregation",
    "num_chunks": "ckks_parameters",
    "round_decryption": "ckks_decryption_rounding",
    "save_ckks_key": "ckks_search_key",
    "seal": "key_wrapping",
    "slot_count": "ckks_context",
    "sum_encrypted": "ckks_aggregation",
    "unseal": "key_wrapping",
    "verify_contribution_signature": "contribution_signature",
    "write_secret_file": "secret_files",
}

__getattr__, __dir__ = lazy_exports(__name__, _SUBMODULE)

__all__ = [
    "COEFF_MODULUS_BITS",
    "GRID_BITS_ABOVE_SCALE",
    "KEY_FILE_MAGIC",
    "MAX_COEFF_MODULUS_BITS",
    "NONCE_BYTES",
    "POLY_MODULUS_DEGREE",
    "SCALE_BITS",
    "SECRET_FILE_MODE",
    "TENSEAL_ERRORS",
    "WRAP_MAGIC",
    "BlockLayout",
    "CkksDocumentEncryptor",
    "CkksError",
    "CkksInnerProductScorer",
    "CkksParameters",
    "CkksSearchKey",
    "ContributionSignatureError",
    "ContributionSigner",
    "CryptoError",
    "CryptoInputError",
    "DcpeCiphertext",
    "DcpeKey",
    "DcpeKeyring",
    "EncryptedBlock",
    "KeyManagementError",
    "KeyUnwrapError",
    "LoadedBlock",
    "ScaleAndPerturb",
    "SecretFileError",
    "ciphertext_words",
    "context_fingerprint",
    "context_slots",
    "decrypt_sum",
    "decrypt_vector",
    "decryption_grid",
    "derive_coin_key",
    "encrypt_vector",
    "is_private_context",
    "load_ckks_key",
    "load_context",
    "make_contexts",
    "max_abs_sum",
    "num_chunks",
    "read_secret_file",
    "require_secret_file",
    "round_decryption",
    "save_ckks_key",
    "seal",
    "slot_count",
    "sum_encrypted",
    "unseal",
    "verify_contribution_signature",
    "write_secret_file",
]
