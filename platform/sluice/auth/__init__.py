"""API keys with scopes, stored as salted hashes."""

from sluice.auth.keys import KeyRecord, KeyStore, Scope, parse_scopes

__all__ = ["KeyRecord", "KeyStore", "Scope", "parse_scopes"]
