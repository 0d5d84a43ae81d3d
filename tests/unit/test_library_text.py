"""connector.config.check_library_text: a library file checked with check-config's file:line messages."""

from __future__ import annotations

import pytest

from connector.config import check_library_text
from connector.errors import ConfigError

GOOD = """\
cadences:
  quick:
    steps:
      - {id: due, offset: 0, remind: firm}
policies:
  templates: [firm]
  late_fees:
    flat:
      kind: flat
      amount: 25
templates:
  firm:
    subject.txt: "Invoice {{ invoice.number }}"
    body.txt: |
      Hello {{ customer_name }},
      please pay.
"""


def test_a_good_file_gives_cadences_policies_templates_and_lines() -> None:
    checked = check_library_text(GOOD, "lib.yaml")
    assert set(checked.rules.cadences) == {"quick"}
    assert set(checked.rules.late_fees) == {"flat"}
    assert checked.templates is not None
    assert checked.templates["firm"]["body.txt"] == "Hello {{ customer_name }},\nplease pay.\n"
    assert checked.lines["templates.firm.body.txt"] == 14
    assert checked.lines["cadences.quick"] == 2


def test_no_templates_block_is_none() -> None:
    assert check_library_text("cadences: {}\n").templates is None


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("cadence:\n  x: {}\n", "lib.yaml:1:1: cadence", "did you mean 'cadences'"),
        ("cadences: {}\ncadences: {}\n", "lib.yaml:2:1: cadences", "duplicate key"),
        (
            "templates:\n  firm:\n    body.txt: [1]\n",
            "lib.yaml:3:5: templates.firm.body.txt",
            "expected the template's text",
        ),
        ("templates:\n  firm:\n    footer.txt: x\n", "lib.yaml:3:5: templates.firm.footer.txt", "unknown key"),
        (
            "cadences:\n  q:\n    steps:\n      - {id: a, offset: x, remind: firm}\n",
            "lib.yaml:2:3: cadences.q",
            "offset",
        ),
        ("cadences: [1, 2]\n", "lib.yaml:1:1: cadences", "expected a mapping"),
        ("cadences: {\n", "lib.yaml:2", "not valid YAML"),
    ],
)
def test_problems_are_reported_at_file_line_and_path(text: str, where: str, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        check_library_text(text, "lib.yaml")
    message = str(refused.value)
    assert message.startswith(where), message
    assert words in message
