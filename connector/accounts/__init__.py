"""Accounts: local users and passwords, and sign-up through a provider's OpenID Connect."""
