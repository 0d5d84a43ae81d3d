"""Secrets: the AES-GCM key ring, sealed connection tokens, key rotation and log redaction."""
