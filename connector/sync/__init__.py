"""Sync: invoices and customers from a ledger into the store, and webhook intake."""
