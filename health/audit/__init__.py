"""The access log: append-only, hash-chained, readable by the citizen and by auditors."""
