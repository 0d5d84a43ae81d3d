"""Reminder email: the message and its headers, SMTP and maildir delivery, sandboxed rendering, templates."""
