"""The library screens' words: steps, policies, a preview's actions and an impact, as a bookkeeper reads them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.domain.impact import ActionsDiff
from connector.domain.money import Money
from connector.library.items import Usage
from connector.library.resolve import CADENCE, DISCOUNT, LATE_FEE, PAYMENT_PLAN, TEMPLATE
from connector.outbox.cadence_preview import CadencePreview, PreviewLine
from web.pages.library_forms import FEE_KINDS, StepForm
from web.pages.ui import money

MINUS = "\u2212"  # the minus sign of "-1 late fee" as typeset
KIND_WORDS = {
    CADENCE: "cadence",
    LATE_FEE: "late-fee policy",
    DISCOUNT: "discount policy",
    PAYMENT_PLAN: "payment-plan policy",
    TEMPLATE: "template",
}
HOLD_WORDS = {
    "dispute": "under dispute",
    "paused": "paused",
    "excluded": "excluded from reminders",
    "promise_to_pay": "the customer promised to pay",
    "below_minimum": "the balance is below the cadence's minimum",
    "unapplied_credit": "unapplied credit covers it: reconcile it in the ledger",
    "unknown_cadence": "its cadence does not exist",
    "configuration": "the cadence has no step that can start chasing a late invoice",
}
KIND_NOUNS = {
    "remind": ("reminder", "reminders"),
    "note": ("note", "notes"),
    "late_fee": ("late fee", "late fees"),
    "fee_reversal": ("fee reversal", "fee reversals"),
    "discount_offer": ("discount offer", "discount offers"),
    "discount_credit": ("discount credit", "discount credits"),
    "call_task": ("call task", "call tasks"),
    "escalate": ("escalation", "escalations"),
    "hold": ("hold", "holds"),
    "plan_broken": ("broken payment plan", "broken payment plans"),
}


def _days(offset: int, kind: str) -> str:
    unit = "business day" if kind == "business" else "day"
    if offset == 0:
        return "on the due date"
    count = abs(offset)
    return f"{count} {unit}{'s' if count != 1 else ''} {'before' if offset < 0 else 'after'} the due date"


def describe_step(step: StepForm) -> str:
    """A step in words: "3 days after the due date: reminder “firm”, note, late fee “monthly_interest”"."""
    try:
        when = _days(int(step.offset), step.days)
    except ValueError:
        when = f"{step.offset} days"
    does = []
    if step.remind:
        does.append(f"reminder “{step.remind}”")
    if step.note:
        does.append("note in the ledger")
    if step.late_fee:
        does.append(f"late fee “{step.late_fee}”")
    if step.discount:
        does.append(f"discount offer “{step.discount}”")
    if step.call_task:
        does.append("call task")
    if step.escalate:
        does.append("hand off with a letter and evidence pack" if step.handoff else "escalate to a person")
    return f"{when}: {', '.join(does) or 'nothing'}"


def describe_steps(body: Mapping[str, Any]) -> list[str]:
    """Every step of a cadence body in words."""
    steps = body.get("steps")
    return [describe_step(StepForm.of(step)) for step in steps] if isinstance(steps, list) else []


def describe_policy(kind: str, body: Mapping[str, Any]) -> str:
    """A policy in a sentence."""
    if kind == DISCOUNT:
        days = body.get("days")
        if body.get("basis", "issue") == "issue":
            return f"{body.get('percent')} % off when paid within {days} days of the issue date"
        when = "by the due date" if days == 0 else f"at least {days} days before the due date"
        return f"{body.get('percent')} % off when paid {when}"
    if kind == PAYMENT_PLAN:
        offsets = body.get("remind_offsets", [-3, 0])
        return (
            f"Installment reminders at {', '.join(str(v) for v in offsets) if isinstance(offsets, list) else offsets}"
            f" days; broken after {body.get('grace_days', 3)} days' grace; template "
            f"“{body.get('template', 'installment')}”"
        )
    return _describe_fee(body)


def _describe_fee(body: Mapping[str, Any]) -> str:
    kind = body.get("kind")
    if kind == "flat":
        what = f"A flat fee of {body.get('amount')}"
    elif kind == "percent":
        what = f"{body.get('percent')} % of the balance"
    elif kind == "interest":
        rate = body.get("annual_rate")
        what = (
            f"Interest at {rate} % a year"
            if rate is not None
            else f"Interest at {body.get('rate_per_month')} % a month"
        )
    else:
        what = dict(FEE_KINDS).get(str(kind), str(kind))
    parts = [what]
    if body.get("grace_days"):
        parts.append(f"after {body.get('grace_days')} days' grace")
    if body.get("repeat"):
        parts.append(
            f"every {body.get('repeat')}"
            + (f", at most {body.get('max_count')} times" if body.get("max_count") else "")
        )
    return ", ".join(parts)


def _invoices(numbers: Sequence[str]) -> str:
    if not numbers:
        return ""
    if len(numbers) == 1:
        return f"invoice {numbers[0]}"
    return f"invoices {', '.join(numbers[:-1])} and {numbers[-1]}"


def _step_words(step: str) -> str:
    if step.startswith("plan:"):
        return "payment plan installment"
    return f"step “{step}”" if step else ""


def _amount(value: Money | None) -> str:
    return money(value.amount, value.currency) if value is not None else ""


def describe_line(line: PreviewLine) -> str:
    """One planned action in words, without the customer (the preview lists each day's actions by customer)."""
    invoices = _invoices(line.invoices)
    amount = _amount(line.amount)
    texts = {
        "remind": ("Statement email (PDF attached)" if line.template == "statement" else "Reminder email")
        + f" about {invoices}"
        + (f" ({amount})" if amount else "")
        + (f", template “{line.template}”" if line.template else ""),
        "note": f"Note on {invoices} in the ledger: “{line.text or ''}”",
        "late_fee": f"Late fee of {amount} on {invoices}" + (f": {line.text}" if line.text else ""),
        "fee_reversal": f"Fee of {amount} reversed on {invoices}",
        "discount_offer": f"Early-payment discount of {amount} offered on {invoices}",
        "discount_credit": f"Discount credit of {amount} on {invoices}",
        "call_task": f"Call task for a person about {invoices}: “{line.text or ''}”",
        "escalate": f"Escalation: {invoices} handed to a person; no more reminders",
        "hold": f"Held: {invoices}, {HOLD_WORDS.get(line.hold_reason or '', 'held')}",
        "plan_broken": f"Payment plan broken on {invoices}; the cadence resumes",
    }
    text = texts.get(line.kind, f"{line.kind.replace('_', ' ').capitalize()}: {invoices}")
    step = _step_words(line.step)
    if step:
        text += f" · {step}"
    if line.requires_approval:
        text += " · waits for approval"
    return text


def by_customer(lines: Sequence[PreviewLine]) -> list[tuple[str, list[PreviewLine]]]:
    """A day's actions grouped by customer (customers by name, each one's actions in the planner's order)."""
    grouped: dict[str, list[PreviewLine]] = {}
    for line in lines:
        grouped.setdefault(line.customer, []).append(line)
    return sorted(grouped.items(), key=lambda pair: pair[0].lower())


def _counted(kind: str, count: int) -> str:
    one, many = KIND_NOUNS.get(kind, (kind.replace("_", " "), kind.replace("_", " ") + "s"))
    return f"{count} {one if count == 1 else many}"


def day_summary(lines: Sequence[PreviewLine]) -> str:
    """A day's actions counted by kind, reminders first: "3 reminders, 1 late fee"."""
    counts: dict[str, int] = {}
    for line in lines:
        counts[line.kind] = counts.get(line.kind, 0) + 1
    order = list(KIND_NOUNS)
    ranked = sorted(counts, key=lambda kind: order.index(kind) if kind in order else len(order))
    return ", ".join(_counted(kind, counts[kind]) for kind in ranked)


@dataclass(frozen=True)
class PreviewSummary:
    """A preview counted: things by kind, and the late fees per currency (never summed across currencies)."""

    counts: str
    fees: str


def summarize(result: CadencePreview | None) -> PreviewSummary | None:
    """The preview's totals in words."""
    if result is None:
        return None
    lines = [line for day in result.plan for line in day.lines]
    fees: dict[str, Money] = {}
    for line in lines:
        if line.kind == "late_fee" and line.amount is not None:
            currency = line.amount.currency
            fees[currency] = fees.get(currency, Money.zero(currency)) + line.amount
    return PreviewSummary(day_summary(lines), " + ".join(_amount(fees[c]) for c in sorted(fees)))


def impact_sentence(diff: ActionsDiff) -> str:
    """A client's change in words: "+3 reminders, -1 late fee (-£25.00)" (with real minus signs) or "no change"."""
    if diff.unchanged:
        return "no change"
    parts = []
    if diff.reminders_added:
        parts.append(f"+{_counted('remind', diff.reminders_added)}")
    if diff.reminders_removed:
        parts.append(f"{MINUS}{_counted('remind', diff.reminders_removed)}")
    fees = []
    for change, sign, words in (("added", "+", ""), ("removed", MINUS, ""), ("changed", "", " at a new amount")):
        count = sum(1 for fee in diff.fees if fee.change == change)
        if count:
            fees.append(f"{sign}{_counted('late_fee', count)}{words}")
    amounts = [_signed(diff.fee_change[c]) for c in sorted(diff.fee_change) if diff.fee_change[c].amount]
    if fees:
        parts.append(", ".join(fees) + (f" ({', '.join(amounts)})" if amounts else ""))
    for kind, (current, proposed) in sorted(diff.counts.items()):
        if proposed != current:
            sign = "+" if proposed > current else MINUS
            parts.append(f"{sign}{_counted(kind, abs(proposed - current))}")
    return ", ".join(parts) or "no change"


def _signed(value: Money) -> str:
    text = money(abs(value.amount), value.currency)
    return f"+{text}" if value.amount > 0 else f"{MINUS}{text}"


def describe_usage(usage: Usage) -> str:
    """Who uses a library item, in words: clients and customers by name (counted when many), the default cadence,
    the items that name it, and active payment plans counted per client (never the ledger's invoice ids)."""
    parts: list[str] = []
    if usage.clients:
        parts.append(_names("client", [name or f"#{cid}" for cid, name in usage.clients]))
    if usage.customers:
        parts.append(_names("customer", [name or f"#{cid}" for cid, name in usage.customers]))
    if usage.default:
        parts.append("the organization's default cadence")
    if usage.items:
        parts.append(", ".join(f"{KIND_WORDS.get(kind, kind)} “{name}”" for kind, name in usage.items))
    if usage.plans:
        per_client: dict[str, int] = {}
        for client, _invoice in usage.plans:
            per_client[client] = per_client.get(client, 0) + 1
        count = len(usage.plans)
        where = ", ".join(f"{client} {number}" for client, number in sorted(per_client.items()))
        parts.append(f"{count} active payment plan{'s' if count != 1 else ''} ({where})")
    return "; ".join(parts)


def _names(noun: str, names: Sequence[str], limit: int = 6) -> str:
    if len(names) > limit:
        return f"{len(names)} {noun}s ({', '.join(names[:limit])} and {len(names) - limit} more)"
    return f"{noun}{'s' if len(names) != 1 else ''} {', '.join(names)}"
