"""What happens to pushed records: person matching, provenance, deduplication."""
