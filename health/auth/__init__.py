"""Identities and tokens: who is calling."""
