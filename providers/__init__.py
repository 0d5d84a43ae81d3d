"""Accounting providers: one folder each (same module names), discovered by connector.registry."""
