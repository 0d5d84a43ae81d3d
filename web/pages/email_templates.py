"""The templates screen: the organization's email templates (the built-in starter ones included), an editor for
each template's subject, plain text and HTML with a preview on a real open invoice of a chosen client, and the
versions with restore.

Routes (blueprint `email_templates_page`, all under /orgs/<org_id>/templates):

    GET  ""                          the templates, which cadences and payment plans use each
    POST /new                        a new template, copied from another
    GET  /<item_id>                  the editor
    POST /<item_id>                  save as a new version (`base_version`); a template that fails in the sandbox is
                                     refused at its line, with what was typed kept
    GET  /<item_id>/invoices         htmx: the open invoices of the chosen client (the preview's second choice)
    POST /<item_id>/preview          htmx: the typed template rendered on that invoice: subject, text and HTML (the
                                     HTML in a sandboxed iframe, so nothing in it runs)
    POST /<item_id>/rename | /delete | /restore

Rendering goes through connector.library.template_preview, which checks the parts as saving does and renders
them with the mailer's own sandboxed renderer. Roles as on the cadences screen: everyone reads, owners and
accountants who see every client change, viewers get 403 on every POST.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, abort, flash, g, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from connector.errors import InUse, InvalidInput, UnknownRecord
from connector.library import items
from connector.library.listing import library_listing
from connector.library.resolve import TEMPLATE
from connector.library.template_preview import open_invoices, render_on_invoice
from connector.library.templates import builtin_template_body
from connector.mail.rendering import MAX_TEMPLATE_CHARS, TEMPLATE_NAMES
from web.api.context import WRITERS
from web.extensions import services
from web.pages import cadences
from web.pages.library_words import describe_usage
from web.security import CONTENT_SECURITY_POLICY

bp = Blueprint("email_templates_page", __name__, url_prefix="/orgs/<int:org_id>/templates")

PARTS = (("subject", "subject.txt", "Subject"), ("text", "body.txt", "Plain text"), ("html", "body.html", "HTML"))
# The email's own inline styles render in the preview's sandboxed iframe, which takes this page's policy
# (a srcdoc frame inherits it); scripts stay 'self' only and the frame runs none (no allow-scripts).
EDITOR_CSP = f"{CONTENT_SECURITY_POLICY}; style-src 'self' 'unsafe-inline'"
_LINE = re.compile(r"^line (\d+): ")


@dataclass
class TemplateForm:
    """A template as the editor shows it: its three parts as typed."""

    subject: str = ""
    text: str = ""
    html: str = ""
    base_version: int = 0

    @classmethod
    def of(cls, body: Mapping[str, Any], version: int) -> TemplateForm:
        """A stored template body as the editor shows it."""
        return cls(
            subject=str(body.get("subject.txt") or ""),
            text=str(body.get("body.txt") or ""),
            html=str(body.get("body.html") or ""),
            base_version=version,
        )

    @classmethod
    def of_form(cls, form: MultiDict[str, str]) -> TemplateForm:
        """The posted editor form (each part cut at the sandbox's size limit plus one, so it is refused)."""
        limit = MAX_TEMPLATE_CHARS + 1
        return cls(
            subject=form.get("subject", "")[:limit].replace("\r\n", "\n"),
            text=form.get("text", "")[:limit].replace("\r\n", "\n"),
            html=form.get("html", "")[:limit].replace("\r\n", "\n"),
            base_version=cadences.int_arg(form.get("base_version")) or 0,
        )

    def body(self) -> dict[str, str]:
        """The template's body: subject and text always, HTML when there is any (none: plain text only)."""
        body = {"subject.txt": self.subject, "body.txt": self.text}
        if self.html.strip():
            body["body.html"] = self.html
        return body

    def source(self, key: str) -> str:
        """The typed source of part `key` (subject, text, html)."""
        return str(getattr(self, key, ""))


def refusal(exc: InvalidInput, form: TemplateForm) -> dict[str, dict[str, str]]:
    """The sandbox's refusal next to its part: {"text": {"message": ..., "line": the typed line}}."""
    key = next((key for key, part, _ in PARTS if part == exc.field), "form")
    found = _LINE.match(exc.user_message)
    line = ""
    if found is not None and key != "form":
        lines = form.source(key).split("\n")
        number = int(found.group(1))
        line = lines[number - 1].strip()[:200] if 0 < number <= len(lines) else ""
    message = exc.user_message  # "line 3: …" as the sandbox says it; anything else as a sentence
    return {key: {"message": message if found else message[:1].upper() + message[1:], "line": line}}


# -- the list ------------------------------------------------------------------------------------------------
@bp.get("")
def index(org_id: int) -> ResponseReturnValue:
    """Every template of the organization, with which cadences and plans use it."""
    with services().store.unit_of_work() as uow:
        listed = library_listing(uow, org_id, connection_ids=cadences.visible_ids()).get(TEMPLATE, [])
    rows = [
        {
            "listed": entry,
            "builtin": entry.entry.name in TEMPLATE_NAMES,
            "edited": entry.entry.name in TEMPLATE_NAMES
            and dict(entry.entry.body) != builtin_template_body(entry.entry.name),
            "subject": str(entry.entry.body.get("subject.txt") or "").strip(),
            "html": bool(str(entry.entry.body.get("body.html") or "").strip()),
        }
        for entry in listed
    ]
    return render_template(
        "email_templates/index.html", rows=rows, can_edit=cadences.can_edit(), kind_words=cadences.KIND_WORDS
    )


@bp.post("/new")
def create(org_id: int) -> ResponseReturnValue:
    """A new template, a copy of another (its subject and text to start from)."""
    cadences.require_editor()
    name = request.form.get("name", "")[: items.MAX_NAME + 50]
    copy_from = cadences.int_arg(request.form.get("copy_from"))
    with services().store.unit_of_work() as uow:
        try:
            if copy_from is None:
                raise InvalidInput("choose a template to start from", "copy_from")
            body = items.get_item(uow, org_id, copy_from, TEMPLATE).body
            created = items.create_item(uow, org_id, TEMPLATE, name, body, actor=cadences.actor(), now=cadences.now())
            uow.commit()
        except (InvalidInput, UnknownRecord) as exc:
            flash(f"The template was not created: {exc.user_message}", "error")
            return redirect(url_for(".index", org_id=org_id))
    flash(f"Created the template “{created.name}”. Change its wording, preview it, then save.", "success")
    return redirect(url_for(".edit", org_id=org_id, item_id=created.id))


# -- the editor ----------------------------------------------------------------------------------------------
@bp.get("/<int:item_id>")
def edit(org_id: int, item_id: int) -> ResponseReturnValue:
    """The editor of one template at its current version."""
    with services().store.unit_of_work() as uow:
        item = _template_or_404(uow, org_id, item_id)
    return _editor(org_id, item, TemplateForm.of(item.body, item.version))


@bp.post("/<int:item_id>")
def save(org_id: int, item_id: int) -> ResponseReturnValue:
    """Save the template as a new version; refused at the line when it fails in the sandbox."""
    cadences.require_editor()
    form = TemplateForm.of_form(request.form)
    with services().store.unit_of_work() as uow:
        item = _template_or_404(uow, org_id, item_id)
    with services().store.unit_of_work() as uow:
        try:
            saved = items.update_item(
                uow, org_id, item_id, form.body(), base_version=form.base_version, kind=TEMPLATE,
                actor=cadences.actor(), now=cadences.now(),
            )  # fmt: skip
            uow.commit()
        except InUse:
            with services().store.unit_of_work() as again:
                theirs = _template_or_404(again, org_id, item_id)
            stale = (
                f"Not saved: someone else changed this template while you were editing (it is now version "
                f"{theirs.version}; you started from version {form.base_version}). Their version is shown below; "
                "what you typed is under “What you had typed”."
            )
            return _editor(org_id, theirs, TemplateForm.of(theirs.body, theirs.version), stale=stale, yours=form)
        except InvalidInput as exc:
            return _editor(org_id, item, form, errors=refusal(exc, form))
    if saved.version == item.version:
        flash("Nothing changed, so nothing was saved.", "info")
    else:
        flash(f"Saved “{saved.name}” as version {saved.version}. The next reminders use it.", "success")
    return redirect(url_for(".edit", org_id=org_id, item_id=item_id))


@bp.get("/<int:item_id>/invoices")
def invoices(org_id: int, item_id: int) -> ResponseReturnValue:
    """htmx: the open invoices of the chosen client, as the preview's invoice field."""
    client_id = cadences.int_arg(request.args.get("preview_client"))
    clients = {cid for cid, _ in cadences.visible_clients(org_id)}
    with services().store.unit_of_work() as uow:
        _template_or_404(uow, org_id, item_id)
        choices = open_invoices(uow, org_id, client_id) if client_id in clients and client_id is not None else []
    return render_template("email_templates/_invoices.html", invoices=choices)


@bp.post("/<int:item_id>/preview")
def preview(org_id: int, item_id: int) -> ResponseReturnValue:
    """htmx: the typed template rendered on the chosen invoice (nothing saved, nothing sent)."""
    if g.get("role") not in WRITERS:
        abort(403)
    form = TemplateForm.of_form(request.form)
    client_id = cadences.int_arg(request.form.get("preview_client"))
    invoice_id = cadences.int_arg(request.form.get("preview_invoice"))
    clients = {cid for cid, _ in cadences.visible_clients(org_id)}
    rendered = None
    errors: dict[str, dict[str, str]] = {}
    with services().store.unit_of_work() as uow:
        item = _template_or_404(uow, org_id, item_id)
        if client_id is None or client_id not in clients or invoice_id is None:
            errors = {"form": {"message": "Choose a client and one of its open invoices.", "line": ""}}
        else:
            try:
                rendered = render_on_invoice(uow, org_id, client_id, invoice_id, item.name, form.body(), cadences.now())
            except InvalidInput as exc:
                errors = refusal(exc, form)
            except UnknownRecord:
                errors = {"form": {"message": "Choose one of the client's open invoices.", "line": ""}}
    labels = {key: label for key, _, label in PARTS}
    return render_template("email_templates/_preview.html", rendered=rendered, errors=errors, labels=labels)


@bp.post("/<int:item_id>/rename")
def rename(org_id: int, item_id: int) -> ResponseReturnValue:
    """Rename a template (cadences and payment plans that name it follow)."""
    return cadences.rename_item(org_id, item_id, TEMPLATE, url_for(".edit", org_id=org_id, item_id=item_id))


@bp.post("/<int:item_id>/delete")
def delete(org_id: int, item_id: int) -> ResponseReturnValue:
    """Delete a template nothing names."""
    back = url_for(".edit", org_id=org_id, item_id=item_id)
    return cadences.delete_item(org_id, item_id, TEMPLATE, back, url_for(".index", org_id=org_id))


@bp.post("/<int:item_id>/restore")
def restore(org_id: int, item_id: int) -> ResponseReturnValue:
    """Make an old version's wording current again."""
    return cadences.restore_item(org_id, item_id, TEMPLATE, url_for(".edit", org_id=org_id, item_id=item_id))


def _template_or_404(uow: Any, org_id: int, item_id: int) -> items.ItemView:
    try:
        return items.get_item(uow, org_id, item_id, TEMPLATE)
    except UnknownRecord:
        abort(404)


def _editor(
    org_id: int,
    item: items.ItemView,
    form: TemplateForm,
    *,
    errors: Mapping[str, Mapping[str, str]] | None = None,
    stale: str = "",
    yours: TemplateForm | None = None,
) -> Any:
    clients = cadences.visible_clients(org_id)
    with services().store.unit_of_work() as uow:
        versions = items.versions(uow, org_id, item.id, TEMPLATE)
        usage = items.usage(uow, org_id, item.id)
        first = open_invoices(uow, org_id, clients[0][0]) if clients else []
    page = render_template(
        "email_templates/edit.html",
        item=item,
        form=form,
        parts=PARTS,
        errors=dict(errors or {}),
        stale=stale,
        yours=yours,
        builtin=item.name in TEMPLATE_NAMES,
        clients=clients,
        invoices=first,
        versions=versions,
        usage=describe_usage(usage),
        in_use=bool(usage),
        can_edit=cadences.can_edit(),
        can_preview=g.get("role") in WRITERS,
        max_chars=MAX_TEMPLATE_CHARS,
        org_id=org_id,
    )
    response = make_response(page)
    response.headers["Content-Security-Policy"] = EDITOR_CSP
    return response
