"""Helpers of the `workers_10k_connections` bench: seeding and changing the emulators' ledgers over their
admin APIs (`ledgers`), and reading the outcome back from the store and the emulators (`readings`)."""
