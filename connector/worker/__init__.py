"""The worker: the lease-claiming scheduler and one connection's turn (sync, plan, execute)."""
