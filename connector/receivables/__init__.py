"""What people read and do about receivables: invoices, outbox actions, tasks, the activity timeline, reports.

The services behind the API (and the web screens to come) over the Store: every listing is scoped to one
organization and, for a client-limited member, to the connections they may see (`connection_ids`; None
for every client), and pages with an opaque keyset cursor (stable when rows are added meanwhile).
Operations on actions (approve, skip, retry, mark an uncertain email as sent) check the state, record an
activity and an audit entry in the same unit of work; approve and skip go through connector.review.
Money leaves as `Money` (Decimal and currency), never as floats.
"""
