"""Connections: the OAuth connect/callback/disconnect services and the single-flight token source."""
