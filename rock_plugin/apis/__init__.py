"""Python API behind the tools (train, test, predict, export)."""
