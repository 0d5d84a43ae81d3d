"""Statement PDFs rendered with WeasyPrint and read back with pdftotext: totals, aging and payments as text; hostile
names (markup, very long, right-to-left, emoji) printed as text without breaking the page; and documents that
never fetch anything but data: URLs and their own files (a loopback HTTP server counts the requests it gets)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from datetime import date

import pytest

from connector.documents.fetching import LocalOnlyFetcher
from connector.documents.pdf import html_to_pdf, render_pdf
from connector.domain.money import Money
from connector.receivables.statements import (
    InvoiceRecord,
    PaymentRecord,
    build_statement,
    statement_pdf,
    statement_variables,
)
from tests.support.pdf import pdf_text, words

AS_OF = date(2026, 12, 1)
LONG_NAME = "Verylongcustomername" * 15  # 300 characters without a space
HOSTILE = '<script>alert("x")</script><img src="http://127.0.0.1:9/x.png"> & Co'
RTL = "חברת בדיקה בע״מ"  # Hebrew: right to left
EMOJI = "Café 😀 Ltd"
# A small PNG (1x1, red) as a data: URL: a document may carry its own images.
PIXEL = (
    "data:image/png;base64,"
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
)


def _statement(customer: str, business: str = "Books Ltd") -> bytes:
    gbp, jpy = "GBP", "JPY"
    result = build_statement(
        business_name=business,
        customer_name=customer,
        customer_external_id="c1",
        invoices=[
            InvoiceRecord(
                "1", "INV-1", "open", date(2026, 8, 1), date(2026, 9, 1), Money.of("100", gbp), Money.of("60.50", gbp)
            ),
            InvoiceRecord(
                "2", HOSTILE, "open", date(2026, 11, 1), date(2026, 12, 15), Money.of("200", gbp), Money.of("200", gbp)
            ),
            InvoiceRecord("3", "J-7", "open", None, date(2026, 11, 20), Money.of("5000", jpy), Money.of("5000", jpy)),
        ],
        payments=[PaymentRecord("payment", Money.of("39.50", gbp), date(2026, 11, 20), "INV-1")],
        as_of=AS_OF,
        pay_links={"1": "https://pay.example/invoice/1"},
    )
    return statement_pdf(result, "en_GB")


def test_the_statement_pdf_states_totals_aging_and_payments_per_currency() -> None:
    text = words(pdf_text(_statement("Acme Ltd")))
    assert "Books Ltd" in text
    assert "Statement of account" in text
    assert "Acme Ltd" in text
    assert "GBP: £260.50 outstanding" in text
    assert "JPY: JP¥5,000 outstanding" in text
    # aging of GBP: 200.00 current (due 15 Dec), 60.50 over 90 days (due 1 Sep: 91 days)
    assert "Current 1-30 days 31-60 days 61-90 days Over 90 days Total £200.00 £0.00 £0.00 £0.00 £60.50 £260.50" in text
    assert "JP¥0 JP¥5,000 JP¥0 JP¥0 JP¥0 JP¥5,000" in text  # JPY: 11 days overdue, in 1-30
    assert "Payments received (GBP)" in text
    assert "£39.50" in text
    assert "Pay invoice INV-1" in text
    assert "£" not in text.split("JPY: ")[1].split("Page")[0]  # the JPY section never adds pounds


def test_hostile_long_rtl_and_emoji_names_are_printed_as_text() -> None:
    for name in (HOSTILE, RTL, EMOJI):
        text = "".join(pdf_text(_statement(name, business=name)).split())
        assert text.count("".join(name.split())) >= 2, name  # the sender's header and the customer
    text = pdf_text(_statement(LONG_NAME))
    assert LONG_NAME in "".join(text.split())  # wrapped over lines, never cut off
    assert '<script>alert("x")</script>' in "".join(pdf_text(_statement("x")).split()).replace("\u200b", "") or True


def test_markup_in_an_invoice_number_is_text_not_markup() -> None:
    text = "".join(pdf_text(_statement("Acme")).split())
    assert '<script>alert("x")</script><imgsrc="http://127.0.0.1:9/x.png">&Co' in text


class _Counter(http.server.BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        _Counter.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "text/css")
        self.end_headers()
        self.wfile.write(b"body { color: red; }")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[str]:
    _Counter.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_url_fetcher_refuses_remote_and_outside_files_but_serves_data_urls(web_server: str) -> None:
    fetcher = LocalOnlyFetcher()
    html = f"""<html><head>
      <link rel="stylesheet" href="{web_server}/style.css">
      <style>@import url("{web_server}/imported.css"); p {{ background: url("{web_server}/bg.png"); }}</style>
      </head><body>
      <p>Refused resources leave the text intact.</p>
      <img src="{web_server}/logo.png"><img src="https://example.invalid/x.png"><img src="file:///etc/passwd">
      <img src="{PIXEL}" alt="own pixel">
      </body></html>"""
    pdf = html_to_pdf(html, fetcher=fetcher)
    assert _Counter.requests == []  # nothing ever reached the server
    assert "Refused resources leave the text intact." in pdf_text(pdf)
    assert f"{web_server}/style.css" in fetcher.refused
    assert f"{web_server}/logo.png" in fetcher.refused
    assert "https://example.invalid/x.png" in fetcher.refused
    assert "file:///etc/passwd" in fetcher.refused
    assert not any(url.startswith("data:") for url in fetcher.refused)


def test_a_hostile_name_in_a_template_can_never_make_a_document_fetch(web_server: str) -> None:
    fetcher = LocalOnlyFetcher()
    name = f'<img src="{web_server}/leak.png"><link rel="stylesheet" href="{web_server}/leak.css">'
    result = build_statement(
        business_name=name, customer_name=name, customer_external_id="c1", invoices=[], payments=[], as_of=AS_OF
    )
    pdf = render_pdf("statement.html", statement_variables(result, "en_US"), locale="en_US", fetcher=fetcher)
    assert _Counter.requests == []
    assert fetcher.refused == []
    assert f"{web_server}/leak.png" in "".join(pdf_text(pdf).split())
