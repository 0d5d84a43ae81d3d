"""Customers' replies (issue 17): the intake that files each received email under its customer and thread,
pauses automatic reminders after a person's reply, and the IMAP poller that feeds it (docs/replies.md)."""
