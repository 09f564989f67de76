"""Cryptography of the secure index: AEAD, key-encryption keys, streaming files, DCPE."""
