"""Customers' replies as they arrive (issue 17): per-thread reply addresses and parsing raw inbound mail.

Pure code: no storage, no network. `reply_address` signs and reads the plus-address token that ties a reply
to its organization, client, customer and thread; `parsing` turns hostile RFC 5322 bytes into an
`InboundEmail` (the trimmed text, auto-reply signals, thread references). connector.replies stores them.
"""
