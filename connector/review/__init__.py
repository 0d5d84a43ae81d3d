"""Onboarding review and approvals: what a connection would send, and a person's approve or skip.

A newly connected ledger starts in review (`Connection.chasing = "review"`): it syncs and plans, but
every action except holds waits as `awaiting_approval`. `review_of` lists that plan per customer,
grouped by step, with amounts, fees, holds and totals per currency; `approve` releases it (all at once
ends the review and starts the cadence) and `skip` drops single actions for good. Approval mode
(cadence `approval`, `Connection.approval_mode`) uses the same listing and the same two services.
"""

from connector.review.service import (
    ApprovalReport,
    CustomerReview,
    HeldItem,
    Review,
    ReviewError,
    ReviewItem,
    StepGroup,
    approve,
    review_of,
    skip,
)

__all__ = [
    "ApprovalReport",
    "CustomerReview",
    "HeldItem",
    "Review",
    "ReviewError",
    "ReviewItem",
    "StepGroup",
    "approve",
    "review_of",
    "skip",
]
