"""Per-tenant call budgets shared by every client of one tenant in this process (standard library only)."""
