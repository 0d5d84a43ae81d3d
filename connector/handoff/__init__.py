"""The hand-off pack (issue 17): what an `escalate: handoff` step produces for the invoices it hands over.

A letter (UK clients: a letter before claim under the Pre-Action Protocol for Debt Claims with the statutory
interest and compensation claimed, its Information Sheet and Reply Form; others: a final demand), an evidence ZIP
(the invoices' PDFs, every email sent, replies, notes, fees, payments, promises and plans, a one-page summary) and
an agency placement CSV. The figures are pure (`connector.domain.handoff`); `evidence` reads the store, `files`
renders, `service` makes a pack exactly once for the executor. docs/handoff.md tells the whole story.
"""
