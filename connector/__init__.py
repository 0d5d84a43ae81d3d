"""Nudge core: domain rules, services and adapters' ports. Imports neither providers, web nor Flask."""
