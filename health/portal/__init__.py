"""The citizen portal at /portal: eID login, the session, and the citizen's record."""
