"""The outbox: planning actions from the domain, the codec that stores them, the exactly-once executor."""
