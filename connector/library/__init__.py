"""What an organization owns and people change: the versioned library (cadences, policies, templates), each
client's settings, customer and invoice overrides, and the audit log of every such change (docs/design.md)."""
