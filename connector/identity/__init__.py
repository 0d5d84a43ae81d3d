"""Provider-neutral OpenID Connect: ID-token verification shared by every provider's `identify`."""
