"""API keys with scopes, stored as salted hashes."""

from sluice.auth.keys import KeyRecord, KeyStore, Scope, default_keys_file, parse_scopes

__all__ = ["KeyRecord", "KeyStore", "Scope", "default_keys_file", "parse_scopes"]
