"""The hand-off pack's figures (connector.domain.handoff): statutory interest and compensation under the Late Payment
Act (8 points over base, simple daily, from the day after the due date), deductions of fees already charged, per
currency totals, and the hostile-text helpers (CSV formulas, file names)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from connector.domain.fees import FeeRecord
from connector.domain.handoff import (
    DebtFacts,
    claim_for,
    csv_cell,
    is_uk_client,
    reply_by,
    safe_name,
    totals,
    unique_names,
)
from connector.domain.model import Payment
from connector.domain.money import Money
from connector.domain.policy import PolicyError
from connector.domain.policy_parsing import cadence_from_dict

LETTER = date(2026, 11, 30)


def _debt(outstanding: str, currency: str = "GBP", **kw: object) -> DebtFacts:
    values: dict[str, object] = {
        "external_id": "1",
        "number": "INV-1",
        "issue_date": date(2026, 9, 1),
        "due_date": date(2026, 10, 1),
        "total": Money.of(outstanding, currency),
        "outstanding": Money.of(outstanding, currency),
    }
    values.update(kw)
    return DebtFacts(**values)  # type: ignore[arg-type]


def test_statutory_interest_is_8_points_over_base_simple_daily_from_the_day_after_due() -> None:
    claim = claim_for(_debt("1500.00"), LETTER, statutory=True, base_rate=Decimal("4.00"))
    # 1500 x 12 % x 60 / 365 = 29.589...
    assert claim.annual_rate == Decimal("12.00")
    assert claim.interest_from == date(2026, 10, 2)
    assert claim.interest_days == 60
    assert claim.interest == Money.of("29.59", "GBP")
    assert claim.compensation == Money.of("70", "GBP")
    assert claim.total == Money.of("1599.59", "GBP")


@pytest.mark.parametrize(
    ("outstanding", "compensation"),
    [("999.99", "40"), ("1000.00", "70"), ("9999.99", "70"), ("10000.00", "100")],
)
def test_fixed_compensation_follows_the_statutory_bands(outstanding: str, compensation: str) -> None:
    claim = claim_for(_debt(outstanding), LETTER, statutory=True, base_rate=Decimal("4"))
    assert claim.compensation == Money.of(compensation, "GBP")


def test_a_part_payment_reduces_interest_from_its_own_date() -> None:
    # 1000 owed now; 500 more was owed until a payment dated 31 Oct: 1500 owed at the end of 2-30 Oct (29 days),
    # 1000 at the end of 31 Oct to 30 Nov (31 days).
    debt = _debt(
        "1000.00", total=Money.of("1500", "GBP"), payments=(Payment(Money.of("500", "GBP"), date(2026, 10, 31)),)
    )
    claim = claim_for(debt, LETTER, statutory=True, base_rate=Decimal("4"))
    expected = (Decimal(1500) * 29 + Decimal(1000) * 31) * Decimal("0.12") / 365
    assert claim.interest == Money(expected, "GBP")


def test_fees_already_charged_are_deducted_compensation_first() -> None:
    fee = FeeRecord(
        key="k",
        policy="uk",
        step_id="s",
        due_date=date(2026, 10, 1),
        occurrence=0,
        assessed_on=date(2026, 10, 15),
        amount=Money.of("75.00", "GBP"),
        balance=Money.of("1500", "GBP"),
        compensation=Money.of("70", "GBP"),
    )
    claim = claim_for(_debt("1500.00", fees=(fee,)), LETTER, statutory=True, base_rate=Decimal("4"))
    assert claim.compensation == Money.zero("GBP")
    assert claim.interest == Money.of("24.59", "GBP")  # 29.59 less the 5.00 of interest already charged
    assert claim.fees_deducted == Money.of("75.00", "GBP")
    reversed_fee = FeeRecord(**{**{f: getattr(fee, f) for f in fee.__slots__}, "reversed": True})  # type: ignore[attr-defined]
    again = claim_for(_debt("1500.00", fees=(reversed_fee,)), LETTER, statutory=True, base_rate=Decimal("4"))
    assert again.compensation == Money.of("70", "GBP")


def test_no_statutory_claim_outside_the_uk_or_before_the_due_date_or_for_foreign_compensation() -> None:
    assert claim_for(_debt("1500"), LETTER, statutory=False, base_rate=Decimal("4")).total == Money.of("1500", "GBP")
    early = claim_for(_debt("1500"), date(2026, 10, 1), statutory=True, base_rate=Decimal("4"))
    assert early.interest.is_zero()
    assert early.compensation.is_zero()
    euros = claim_for(_debt("1500", "EUR"), LETTER, statutory=True, base_rate=Decimal("4"))
    assert euros.interest.is_positive()
    assert euros.compensation == Money.zero("EUR")


def test_totals_are_per_currency_and_never_mixed() -> None:
    claims = [
        claim_for(_debt("100.00"), LETTER, statutory=False, base_rate=None),
        claim_for(_debt("250.50", external_id="2"), LETTER, statutory=False, base_rate=None),
        claim_for(_debt("70", "USD"), LETTER, statutory=False, base_rate=None),
    ]
    gbp, usd = totals(claims)
    assert (gbp.currency, gbp.invoices, gbp.outstanding) == ("GBP", 2, Money.of("350.50", "GBP"))
    assert (usd.currency, usd.claimed) == ("USD", Money.of("70", "USD"))


def test_uk_client_by_country_else_by_home_currency() -> None:
    assert is_uk_client("GB", "USD")
    assert is_uk_client("", "GBP")
    assert not is_uk_client("IE", "GBP")
    assert not is_uk_client("", "EUR")
    assert reply_by(LETTER) == date(2026, 12, 30)


@pytest.mark.parametrize("value", ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\tx"])
def test_csv_cells_never_start_a_formula(value: str) -> None:
    assert csv_cell(value).startswith("'")


def test_csv_cells_keep_plain_text_on_one_line() -> None:
    assert csv_cell("Acme\r\nLtd") == "Acme Ltd"
    assert csv_cell("\n=1") == " =1"
    assert csv_cell(None) == ""
    assert csv_cell(12) == "12"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("../../etc/passwd", "etc-passwd"), ("..", "file"), ("INV/7\\..", "INV-7"), ("Café 😀", "Cafe"), ("", "file")],
)
def test_safe_names_have_no_path_and_no_traversal(text: str, expected: str) -> None:
    assert safe_name(text) == expected


def test_unique_names_number_repeats() -> None:
    assert unique_names(["a.pdf", "A.pdf", "a.pdf", "b"]) == ("a.pdf", "A-2.pdf", "a-3.pdf", "b")


def test_escalate_handoff_is_an_escalation_with_a_pack() -> None:
    cadence = cadence_from_dict({"name": "c", "steps": [{"id": "h", "offset": 30, "escalate": "handoff"}]})
    step = cadence.steps[0]
    assert step.escalate
    assert step.handoff
    plain = cadence_from_dict({"name": "c", "steps": [{"id": "h", "offset": 30, "escalate": True}]}).steps[0]
    assert plain.escalate
    assert not plain.handoff
    with pytest.raises(PolicyError, match=r"escalate.*handoff"):
        cadence_from_dict({"name": "c", "steps": [{"id": "h", "offset": 30, "escalate": "agency"}]})


def test_the_cadence_editor_keeps_a_hand_off_step() -> None:
    from werkzeug.datastructures import MultiDict

    from web.pages.library_forms import StepForm

    shown = StepForm.of({"id": "h", "offset": 45, "escalate": "handoff"})
    assert shown.escalate
    assert shown.handoff
    assert cadence_from_dict({"steps": [shown.body(0, {})]}, "c").steps[0].handoff  # saved back: still a hand-off
    posted = StepForm.of_form(MultiDict({"steps-0-id": "h", "steps-0-offset": "45", "steps-0-handoff": "on"}), 0)
    assert posted.body(0, {})["escalate"] == "handoff"
    plain = StepForm.of_form(MultiDict({"steps-0-id": "h", "steps-0-offset": "45", "steps-0-escalate": "on"}), 0)
    assert plain.body(0, {})["escalate"] is True
