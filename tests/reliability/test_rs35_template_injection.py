"""RS-35 — template injection and denial of service through user-edited reminder templates.

Each hostile template is either rejected by `validate_template` (what saving a template calls, and
what `render_reminder` runs on every override) with a message naming the template and the problem,
or stopped while rendering by the per-render budget (iterations and calls, characters produced, the
size of any one value), with the peak memory of the attempt measured by tracemalloc. Afterwards the
same process renders the shipped templates normally: one bad template does not disturb the rest.
"""

from __future__ import annotations

import re
import tomllib
import tracemalloc
from datetime import date
from importlib.metadata import version
from pathlib import Path

import pytest

from connector.domain.money import Money
from connector.errors import TemplateError
from connector.mail.rendering import (
    MAX_TEMPLATE_CHARS,
    InvoiceLine,
    ReminderContext,
    render_reminder,
    validate_template,
)

ROOT = Path(__file__).resolve().parents[2]
NAME = "firm/body.txt"
CONTEXT = ReminderContext(
    customer_name="Jane Doe",
    business_name="Acme Plumbing",
    invoices=[InvoiceLine("INV-1001", date(2024, 3, 5), Money.of("1234.50", "USD"), 12)],
    today=date(2024, 3, 17),
)

REJECTED_AT_SAVE = {
    "mro": "{{ ''.__class__.__mro__ }}",
    "subclasses": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals_by_key": "{{ cycler['__init__'] }}",
    "attr_format_cve_2025_27516": "{{ '{0.__class__}'|attr('format')(1) }}",
    "attr_anything": "{{ invoice|attr('number') }}",
    "format_filter": "{{ '%s'|format(customer_name) }}",
    "five_megabytes": "Hello {{ customer_name }}\n" + "x" * (5 * 1024 * 1024),
}

BOUNDED_AT_RENDER = {
    "range_10_9": "{% for i in range(10**9) %}{% endfor %}",
    "nested_range_loops": (
        "{% for a in range(1000) %}{% for b in range(1000) %}{% for c in range(1000) %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    ),
    "nested_string_loops": "{% for a in 'x' * 9999 %}{% for b in 'x' * 9999 %}{% endfor %}{% endfor %}",
    "deep_recursion": "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
    "branching_recursion": "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(40) }}",
    "tilde_doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        "{{ ns.s|length }}"
    ),
    "tilde_doubling_in_macro": (
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}"
        "{{ d('x', 64) }}"
    ),
    "plus_doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"
    ),
    "huge_output": "{% for a in range(1000) %}{% for b in range(1000) %}" + "y" * 200 + "{% endfor %}{% endfor %}",
    "huge_output_in_a_macro": (
        "{% macro m() %}{% for a in range(1000) %}{% for b in range(1000) %}" + "y" * 200 + "{% endfor %}"
        "{% endfor %}{% endmacro %}{% set captured = m() %}done"
    ),
    "str_center": "{{ 'x'.center(10**9) }}",
    "center_filter": "{{ 'x'|center(999999999) }}",
    "percent_width": "{{ '%0999999999d' % 1 }}",
    "format_width": "{{ '{:>999999999}'.format(1) }}",
    "replace_blowup": "{{ ('x' * 9999)|replace('', 'y' * 9999) }}",
}
PEAK_BYTES = 64 * 1024 * 1024  # far below what any of these would need if it ran to the end
# The cases that would build something huge: their peak memory is measured (tracemalloc slows calls).
SIZE_CASES = frozenset(
    {
        "tilde_doubling",
        "tilde_doubling_in_macro",
        "plus_doubling",
        "huge_output",
        "huge_output_in_a_macro",
        "str_center",
        "center_filter",
        "percent_width",
        "format_width",
        "replace_blowup",
    }
)


def render(source: str) -> None:
    render_reminder("firm", CONTEXT, locale="en_US", overrides={NAME: source})


def still_renders_normally() -> None:
    subject, text, _ = render_reminder("firm", CONTEXT, locale="en_US")
    assert "INV-1001" in subject
    assert "Jane Doe" in text


@pytest.mark.parametrize("case", list(REJECTED_AT_SAVE))
def test_rs35_hostile_templates_are_rejected_at_save(case: str) -> None:
    """RS-35: rejected at save with a clear message (the scheduler is unaffected)."""
    source = REJECTED_AT_SAVE[case]
    with pytest.raises(TemplateError) as at_save:
        validate_template(source, name=NAME)
    message = at_save.value.user_message
    assert f"'{NAME}'" in message
    assert re.search(r"may not do|characters long; the limit is", message), message
    assert "<class" not in message

    with pytest.raises(TemplateError) as at_render:  # and the same check guards every render
        render(source)
    assert at_render.value.user_message == message
    still_renders_normally()


@pytest.mark.parametrize("case", list(BOUNDED_AT_RENDER))
def test_rs35_hostile_templates_are_bounded_at_render(case: str) -> None:
    """RS-35: bounded at render: a TemplateError naming the template, small peak memory; the scheduler is unaffected."""
    measure = case in SIZE_CASES
    if measure:
        tracemalloc.start()
    try:
        with pytest.raises(TemplateError) as caught:
            render(BOUNDED_AT_RENDER[case])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert f"'{NAME}'" in caught.value.user_message
    assert re.search(r"may not do|produced more than|could not be rendered: RecursionError", caught.value.user_message)
    assert peak < PEAK_BYTES
    still_renders_normally()


def test_rs35_the_size_cap_is_well_below_five_megabytes() -> None:
    """RS-35: a 5 MB template is rejected at save with a clear message."""
    assert MAX_TEMPLATE_CHARS < 5 * 1024 * 1024
    validate_template("Hello {{ customer_name }}\n" + "x" * (MAX_TEMPLATE_CHARS - 100), name=NAME)


def test_rs35_jinja2_is_at_least_3_1_6() -> None:
    """RS-35: Jinja2 ≥ 3.1.6 is asserted in a test (installed, and the floor pyproject.toml declares)."""
    installed = tuple(int(part) for part in version("jinja2").split(".")[:3])
    assert installed >= (3, 1, 6)
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [jinja] = [line for line in dependencies if line.lower().startswith("jinja2")]
    floor = re.search(r">=\s*([\d.]+)", jinja)
    assert floor is not None
    assert tuple(int(part) for part in floor.group(1).split(".")) >= (3, 1, 6)
