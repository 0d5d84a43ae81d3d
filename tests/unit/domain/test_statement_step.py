"""A cadence step with `statement: true`: parsed and checked, and planned as the customer's statement email. The
statement step's item makes the customer's grouped email of that day the statement (it lists every open invoice
anyway), keeps the usual keys (a statement is a reminder: the same exactly-once and one-a-day rules) and is
recognised by the executor through the items' `statement` flag."""

from __future__ import annotations

from datetime import date

import pytest

from connector.domain.actions import ActionKind
from connector.domain.policy import PolicyError
from connector.domain.policy_parsing import cadence_from_dict, policy_from_dict
from connector.outbox.codec import action_from_json, action_to_json
from tests.support.domain import invoice, only, policies, run, utc


def test_a_statement_step_needs_no_template_and_sends_the_statement_email() -> None:
    cadence = cadence_from_dict({"steps": [{"id": "monthly", "offset": 30, "statement": True}]}, "c")
    [step] = cadence.steps
    assert (step.statement, step.remind) == (True, "statement")


def test_a_statement_step_refuses_another_template_and_a_non_boolean() -> None:
    with pytest.raises(PolicyError, match="step 's', field 'statement': a statement step sends"):
        cadence_from_dict({"steps": [{"id": "s", "offset": 3, "statement": True, "remind": "firm"}]}, "c")
    with pytest.raises(PolicyError, match="field 'statement'"):
        cadence_from_dict({"steps": [{"id": "s", "offset": 3, "statement": "yes please"}]}, "c")
    # statement: false is a step like any other (and one that does nothing is still refused)
    with pytest.raises(PolicyError, match="the step does nothing"):
        cadence_from_dict({"steps": [{"id": "s", "offset": 3, "statement": False}]}, "c")


def test_a_known_templates_list_need_not_name_the_statement_template() -> None:
    rules = policy_from_dict(
        {
            "templates": ["firm"],
            "cadences": {
                "c": {
                    "steps": [{"id": "a", "offset": 1, "remind": "firm"}, {"id": "s", "offset": 9, "statement": True}]
                }
            },
        }
    )
    assert rules.cadences["c"].steps[1].statement


def test_the_statement_step_makes_the_days_grouped_email_the_statement() -> None:
    pol = policies(
        [
            {"id": "due", "offset": 0, "remind": "due_today"},
            {"id": "statement", "offset": 14, "statement": True},
        ]
    )
    # INV-1 is 14 days late (statement step), INV-2 is due today (reminder step): one email, the statement
    invoices = [invoice("1", due=date(2024, 3, 1)), invoice("2", due=date(2024, 3, 15))]
    [email] = only(run(invoices, pol, utc(2024, 3, 15, 12)), ActionKind.REMIND)
    assert email.template == "statement"
    assert "statement listing 2 invoices" in email.rule
    assert {item.invoice_external_id: item.statement for item in email.items} == {"1": True, "2": False}
    assert {item.template for item in email.items} == {"statement", "due_today"}
    # the payload round-trips (the outbox stores it as JSON); an old payload without the flag reads as False
    stored = action_to_json(email)
    assert action_from_json(stored) == email
    for item in stored["items"]:
        del item["statement"]
    assert not any(item.statement for item in action_from_json(stored).items)


def test_without_a_statement_item_the_grouped_email_is_a_reminder() -> None:
    pol = policies(
        [{"id": "due", "offset": 0, "remind": "due_today"}, {"id": "statement", "offset": 14, "statement": True}]
    )
    [email] = only(run([invoice("2", due=date(2024, 3, 15))], pol, utc(2024, 3, 15, 12)), ActionKind.REMIND)
    assert email.template == "due_today"
    assert not any(item.statement for item in email.items)


def test_remind_statement_is_the_same_step_as_the_cadence_editor_writes_it() -> None:
    from web.pages.library_forms import StepForm

    cadence = cadence_from_dict({"steps": [{"id": "s", "offset": 9, "remind": "statement"}]}, "c")
    assert cadence.steps[0].statement
    shown = StepForm.of({"id": "s", "offset": 9, "statement": True})
    assert shown.remind == "statement"
    assert cadence_from_dict({"steps": [shown.body(0, {})]}, "c").steps[0].statement  # saved back: still one


def test_the_cadence_preview_says_statement_email() -> None:
    from connector.outbox.cadence_preview import PreviewLine
    from web.pages.library_words import describe_line

    line = PreviewLine("remind", "Acme", ("INV-1", "INV-2"), "monthly", template="statement")
    assert describe_line(line).startswith("Statement email (PDF attached) about invoices INV-1 and INV-2")
