"""Parsing inbound mail: hostile RFC 5322 bytes in, an `InboundEmail` out; never raises on bad input.

Everything about a received message is untrusted: headers may be malformed or enormous, charsets unknown or
lying, the body HTML only. `parse` reads with the standard library's `email` package (policy.default), falls
back to lenient decoding wherever a part cannot be read, and caps every field it keeps. Text is taken from the
first text/plain part, else from the HTML part converted to text (scripts, styles and quoted blocks dropped;
nothing is rendered). `trim_quoted` keeps what the customer wrote (see its rules), `auto_reply_reason` says why
a message is automatic (docs/replies.md "Auto-replies").
"""

from __future__ import annotations

import contextlib
import email
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser

MAX_TEXT = 20_000  # characters of the full and trimmed text kept
MAX_HEADER = 2_000  # characters of one header value read
MAX_REFERENCES = 50  # message ids of In-Reply-To + References looked at
MAX_PARTS = 200  # MIME parts walked
_MESSAGE_ID = re.compile(r"<[^<>\s]{1,300}>")

# -- auto-replies ------------------------------------------------------------------------------------
_AUTO_PRECEDENCE = frozenset({"auto_reply", "bulk", "junk", "list"})
_AUTO_SUBJECTS = re.compile(
    r"^\s*(out of (the )?office|automatic reply|auto(matic)?[ -]?(reply|response)|autoreply|auto:|"
    r"abwesenheitsnotiz|automatische antwort|r[ée]ponse automatique|absence|respuesta autom[áa]tica|"
    r"risposta automatica|afwezig|i am out of the office|i'm out of the office|on vacation|vacation reply)",
    re.IGNORECASE,
)

# -- quoted text -------------------------------------------------------------------------------------
_ATTRIBUTION = re.compile(
    r"^\s*(on\b.{0,300}\bwrote:?|le\b.{0,300}\ba [ée]crit\s*:?|am\b.{0,300}\bschrieb.{0,100}:?|"
    r"el\b.{0,300}\bescribi[óo]:?|op\b.{0,300}\bschreef.{0,100}:?|il\b.{0,300}\bha scritto:?)\s*$",
    re.IGNORECASE,
)
_ATTRIBUTION_START = re.compile(r"^\s*(on|le|am|el|op|il)\s", re.IGNORECASE)
_ORIGINAL = re.compile(r"^\s*-{2,}\s*(original message|message d'origine|urspr[üu]ngliche nachricht)\s*-{2,}\s*$", re.I)
_FORWARDED = re.compile(r"^\s*-{2,}\s*forwarded message\s*-{2,}\s*$", re.IGNORECASE)
_OUTLOOK_RULE = re.compile(r"^\s*_{10,}\s*$")
_OUTLOOK_FROM = re.compile(r"^\s*\*?(from|von|de|van)\s*:\*?\s", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(r"^\s*\*?(sent|date|to|subject|gesendet|envoy[ée]|an|[àa]|objet|betreff)\s*:", re.I)
_SIGNATURE = re.compile(r"^-- ?$")
_MOBILE_SIGNATURE = re.compile(r"^\s*(sent from my \w+|get outlook for \w+|von meinem \w+ gesendet)", re.I)


@dataclass(frozen=True)
class InboundEmail:
    """One received message, as far as it could be read. Empty strings where a header is missing or unreadable."""

    message_id: str  # with its <>; "" when missing
    from_address: str
    from_name: str
    recipients: tuple[str, ...]  # To, Cc, Delivered-To, X-Original-To addresses, lower case, deduplicated
    subject: str
    sent_at: datetime | None
    references: tuple[str, ...]  # In-Reply-To first, then References, newest first, each with its <>
    text: str  # the whole text (capped)
    trimmed: str  # what the customer wrote, quotes and signature removed (capped)
    auto_reply: str  # why it is an automatic message; "" for a person's
    size: int
    problems: tuple[str, ...] = ()  # what could not be read (the message is still kept)

    def __repr__(self) -> str:  # bodies stay out of logs
        return f"InboundEmail(message_id={self.message_id!r}, size={self.size}, auto_reply={self.auto_reply!r})"


def parse(raw: bytes) -> InboundEmail:
    """`raw` read as well as it can be: never raises for malformed input (what failed is in `problems`)."""
    problems: list[str] = []
    try:
        message = email.message_from_bytes(raw, policy=policy.default)
    except Exception:  # the parser is lenient; anything else is a bug in it: keep what we can say
        message = EmailMessage()
        problems.append("the message could not be parsed")
    from_name, from_address = _from(message, problems)
    text = _body_text(message, problems)
    return InboundEmail(
        message_id=_first_id(_header(message, "Message-ID", problems)),
        from_address=from_address,
        from_name=from_name,
        recipients=_recipients(message, problems),
        subject=_clean_line(_header(message, "Subject", problems))[:300],
        sent_at=_date(_header(message, "Date", problems)),
        references=_references(message, problems),
        text=text[:MAX_TEXT],
        trimmed=trim_quoted(text)[:MAX_TEXT],
        auto_reply=auto_reply_reason(lambda name: _header(message, name, problems), message),
        size=len(raw),
        problems=tuple(dict.fromkeys(problems)),
    )


def _header(message: Message, name: str, problems: list[str]) -> str:
    """One header's value as text ("" when missing or unreadable), capped."""
    try:
        value = message.get(name)
    except Exception:  # a header the registry cannot parse (policy.default parses lazily)
        problems.append(f"the {name} header could not be read")
        try:
            raw = message.get_all(name, failobj=[]) if hasattr(message, "get_all") else []
            return str(raw[0])[:MAX_HEADER] if raw else ""
        except Exception:
            return ""
    if value is None:
        return ""
    try:
        return str(value)[:MAX_HEADER]
    except Exception:
        problems.append(f"the {name} header could not be read")
        return ""


def _all_headers(message: Message, name: str, problems: list[str]) -> list[str]:
    try:
        return [str(value)[:MAX_HEADER] for value in (message.get_all(name) or [])][:20]
    except Exception:
        problems.append(f"the {name} header could not be read")
        return []


def _clean_line(text: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()


def _from(message: Message, problems: list[str]) -> tuple[str, str]:
    raw = _header(message, "From", problems)
    name, address = parseaddr(raw)
    if "@" not in address:
        return _clean_line(name)[:200], ""
    return _clean_line(name)[:200], address.strip().lower()[:320]


def _recipients(message: Message, problems: list[str]) -> tuple[str, ...]:
    values: list[str] = []
    for name in ("Delivered-To", "X-Original-To", "To", "Cc", "Envelope-To", "X-Envelope-To"):
        values.extend(_all_headers(message, name, problems))
    found: dict[str, None] = {}
    for _, address in getaddresses(values)[:100]:
        if "@" in address:
            found[address.strip().lower()[:320]] = None
    return tuple(found)


def _first_id(text: str) -> str:
    match = _MESSAGE_ID.search(text)
    return match.group(0) if match else ""


def _references(message: Message, problems: list[str]) -> tuple[str, ...]:
    ids = _MESSAGE_ID.findall(_header(message, "In-Reply-To", problems))
    ids += list(reversed(_MESSAGE_ID.findall(_header(message, "References", problems))))
    return tuple(dict.fromkeys(ids))[:MAX_REFERENCES]


def _date(text: str) -> datetime | None:
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo is not None else None


# -- bodies ------------------------------------------------------------------------------------------
def _body_text(message: Message, problems: list[str]) -> str:
    plain: str | None = None
    html: str | None = None
    for count, part in enumerate(_walk(message, problems)):
        if count >= MAX_PARTS:
            problems.append("too many MIME parts: the rest was not read")
            break
        kind = _kind_of(part)
        if kind == "text/plain" and plain is None:
            plain = _part_text(part, problems)
        elif kind == "text/html" and html is None:
            html = _part_text(part, problems)
    if plain is not None and plain.strip():
        return _normalize(plain)
    if html is not None:
        return _normalize(html_to_text(html))
    return _normalize(plain or "")


def _kind_of(part: Message) -> str:
    """The part's content type; "" for containers, attachments and parts whose headers cannot be read."""
    try:
        if part.is_multipart() or part.get_content_disposition() == "attachment":
            return ""
        return part.get_content_type()
    except Exception:  # a broken Content-Type or Content-Disposition: the part is skipped
        return ""


def _walk(message: Message, problems: list[str]) -> Iterable[Message]:
    try:
        yield from message.walk()
    except Exception:
        problems.append("the MIME structure is broken: part of the message was not read")


def _part_text(part: Message, problems: list[str]) -> str:
    """A text part's content; unknown or lying charsets are read as UTF-8 with replacements."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content[: MAX_TEXT * 4]
    except Exception:  # LookupError (unknown charset), UnicodeDecodeError, broken transfer encodings
        problems.append("a text part's charset or encoding was wrong: read as UTF-8")
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return ""
    if isinstance(payload, bytes):
        return payload[: MAX_TEXT * 4].decode("utf-8", "replace")
    return str(payload or "")[: MAX_TEXT * 4]


def _normalize(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    text = re.sub(r"[\x01-\x08\x0b\x0c\x0e-\x1f\x7f]", "", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


class _TextOfHtml(HTMLParser):
    """HTML to plain text: text nodes only; script, style, head, blockquote (quoted mail) and the quote
    containers Gmail and Outlook name (class gmail_quote, OutlookMessageHeader) dropped."""

    _SKIP = frozenset({"script", "style", "head", "title", "blockquote", "template", "noscript"})
    _BREAKS = frozenset({"br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "hr", "blockquote"})
    _VOID = frozenset({"br", "hr", "img", "meta", "link", "input", "col", "area", "base", "wbr", "source"})
    _QUOTE_CLASSES = ("gmail_quote", "outlookmessageheader", "moz-cite-prefix", "yahoo_quoted")

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.pieces: list[str] = []
        self.skip_tag = ""  # the element whose content is dropped, and how deep it nests in itself
        self.skip_nesting = 0
        self.size = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._BREAKS and not self.skip_tag:
            self.pieces.append("\n")
        if tag in self._VOID:
            return
        if self.skip_tag:
            self.skip_nesting += tag == self.skip_tag
            return
        classes = " ".join((value or "").lower() for name, value in attrs if name == "class")
        if tag in self._SKIP or any(name in classes for name in self._QUOTE_CLASSES):
            self.skip_tag, self.skip_nesting = tag, 1

    def handle_endtag(self, tag: str) -> None:
        if self.skip_tag and tag == self.skip_tag:
            self.skip_nesting -= 1
            if self.skip_nesting <= 0:
                self.skip_tag = ""
        if tag in self._BREAKS and not self.skip_tag:
            self.pieces.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip_tag and self.size < MAX_TEXT * 4:
            self.pieces.append(data)
            self.size += len(data)


def html_to_text(html: str) -> str:
    """The readable text of an HTML body (never rendered, no markup kept)."""
    parser = _TextOfHtml()
    with contextlib.suppress(Exception):  # HTMLParser is lenient; whatever it raises, keep what was read
        parser.feed(html[: MAX_TEXT * 8])
        parser.close()
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in "".join(parser.pieces).split("\n")]
    return "\n".join(lines)


def trim_quoted(text: str) -> str:
    """What the sender wrote above the quoted mail. Rules, in order, line by line:

    - a line "On … wrote:" (also French, German, Spanish, Dutch, Italian forms; one line or two) ends it;
    - "-----Original Message-----" (and translations), "---------- Forwarded message ----------" end it;
    - an Outlook header block ("From: …" followed by "Sent:"/"Date:"/"To:"/"Subject:", or a line of underscores
      before it) ends it;
    - the signature delimiter "-- " and "Sent from my …" lines end it;
    - lines starting with ">" are quoted and dropped wherever they are.
    When nothing is left (a reply that only quotes), the first 500 characters of the whole text are kept.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    kept: list[str] = []
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if _ATTRIBUTION.match(line[:600]):
            break
        if _ATTRIBUTION_START.match(line) and _ATTRIBUTION.match(f"{line} {following}"[:600]):
            break
        if _ORIGINAL.match(line) or _FORWARDED.match(line) or _SIGNATURE.match(line) or _MOBILE_SIGNATURE.match(line):
            break
        if _OUTLOOK_RULE.match(line) and (_OUTLOOK_FROM.match(following) or not following.strip()):
            break
        if _OUTLOOK_FROM.match(line) and _OUTLOOK_NEXT.match(following):
            break
        if line.lstrip().startswith(">"):
            continue
        kept.append(line.rstrip())
    trimmed = re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip()
    return trimmed or text.strip()[:500]


def _kind_of_message(message: Message) -> str:
    try:
        return message.get_content_type()
    except Exception:  # an unreadable Content-Type says nothing about who wrote it
        return ""


def auto_reply_reason(header: Callable[[str], str], message: Message | None = None) -> str:
    """Why a message is automatic ("" when a person wrote it). Rules (docs/replies.md):

    strong: `Auto-Submitted` other than "no" (RFC 3834); `X-Autoreply` or `X-Autorespond` present;
    `Precedence` auto_reply, bulk, junk or list; an empty Return-Path (a bounce); a delivery report content type;
    weaker, each still enough on its own: `X-MS-Exchange-Generated-Message-Source` (Exchange's own messages)
    and a subject starting "Out of Office", "Automatic reply", "Autoreply", "Auto:" or a translation.
    """
    strong = _strong_auto_reply(header, message)
    if strong:
        return strong
    if header("X-MS-Exchange-Generated-Message-Source").strip():
        return "generated by Exchange"
    if _AUTO_SUBJECTS.match(header("Subject")):
        return "its subject says it is automatic"
    return ""


def _strong_auto_reply(header: Callable[[str], str], message: Message | None) -> str:
    submitted = header("Auto-Submitted").strip().lower()
    if submitted and not submitted.startswith("no"):
        return f"Auto-Submitted: {submitted[:40]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if header(name).strip():
            return f"{name} header"
    precedence = header("Precedence").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"Precedence: {precedence}"
    if header("Return-Path").strip() == "<>":
        return "empty Return-Path (a bounce)"
    if message is not None and _kind_of_message(message) == "multipart/report":
        return "a delivery report"
    return ""
