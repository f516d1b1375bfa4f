"""The access decision: who may see which patient's data, and why."""
