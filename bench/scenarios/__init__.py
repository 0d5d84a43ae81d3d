"""One module per scenario: NAME (str) and run() -> dict of metric name to number."""
