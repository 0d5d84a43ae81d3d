"""The cadences screen: the organization's library of cadences and the fee, discount and payment-plan policies
their steps name; an editor per cadence with a live preview on a client and the impact across clients before
saving; a simple editor per policy.

Routes (blueprint `cadences_page`, all under /orgs/<org_id>/cadences):

    GET  ""                                  the library: cadences (who follows each) and policies
    POST /setup                              set the library up from the install's starter (an empty library)
    POST /new                                a new cadence, copied from another
    GET  /<item_id>                          the cadence editor
    POST /<item_id>                          save as a new version (`base_version`), or add/remove/move a step
    POST /<item_id>/steps                    htmx: the steps fieldset after add/remove/move (nothing saved)
    POST /<item_id>/preview                  htmx: the unsaved cadence on one client, the next 30 days
    POST /<item_id>/impact                   htmx: what saving would change for every client using it (14 days)
    POST /<item_id>/rename | /delete | /restore
    POST /policies/new                       a new late-fee, discount or payment-plan policy
    GET  /policies/<item_id>                 a policy's editor
    POST /policies/<item_id>                 save it; /impact, /rename, /delete, /restore as for cadences

Everyone in the organization reads; owners and accountants change (a member limited to some clients does not:
the library is the whole organization's). Viewers get 403 on every POST. Views call connector.library.items (the
service the JSON API uses), connector.outbox.cadence_preview and connector.outbox.impact; a refusal is shown next
to the field it names, with what the user typed kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from connector.domain.fees import ReferenceRates
from connector.domain.policy import MAX_BUSINESS_OFFSET, MAX_OFFSET_DAYS
from connector.errors import ChangeRefused, InUse, InvalidInput, UnknownRecord
from connector.library import items
from connector.library.listing import library_listing
from connector.library.resolve import CADENCE, DISCOUNT, LATE_FEE, PAYMENT_PLAN, TEMPLATE
from connector.library.starter import ensure_library
from connector.outbox.cadence_preview import CadencePreview, preview_cadence
from connector.outbox.impact import Impact, impact_of_change
from web.api.context import WRITERS
from web.extensions import services
from web.pages.library_forms import (
    APPROVALS,
    CATCH_UPS,
    DAY_KINDS,
    NEW_POLICY,
    POLICY_FIELDS,
    POLICY_KINDS,
    TONES,
    WEEKDAYS,
    CadenceForm,
    cadence_errors,
    clean,
    int_arg,
    labelled,
    policy_body,
    policy_errors,
    policy_values,
    policy_values_of,
)
from web.pages.library_words import (
    KIND_WORDS,
    by_customer,
    day_summary,
    describe_line,
    describe_policy,
    describe_step,
    describe_steps,
    describe_usage,
    impact_sentence,
    summarize,
)

bp = Blueprint("cadences_page", __name__, url_prefix="/orgs/<int:org_id>/cadences")


PREVIEW_DAYS = 30
IMPACT_DAYS = 14


# -- who may do what -------------------------------------------------------------------------------------------
def can_edit() -> bool:
    """Owners and accountants who see every client change the library (it is the whole organization's)."""
    scope = g.get("member_scope")
    return g.get("role") in WRITERS and scope is not None and scope.visible_connection_ids() is None


def require_editor() -> None:
    """403 unless the member may change the library."""
    if not can_edit():
        abort(403)


def require_writer() -> None:
    """403 unless the member is an owner or accountant (previews: client-limited ones see their clients)."""
    if g.get("role") not in WRITERS:
        abort(403)


def visible_ids() -> set[int] | None:
    """The clients the member may see (None: all)."""
    scope = g.get("member_scope")
    ids = scope.visible_connection_ids() if scope is not None else None
    return None if ids is None else set(ids)


def visible_clients(org_id: int) -> list[tuple[int, str]]:
    """(id, name) of the organization's clients the member sees, by name (disconnected ones left out)."""
    visible = visible_ids()
    with services().store.unit_of_work() as uow:
        rows = uow.connections.for_organization(org_id)
        found = [
            (row.id, row.name or row.tenant_id)
            for row in rows
            if row.status != "disconnected" and (visible is None or row.id in visible)
        ]
    return sorted(found, key=lambda pair: (pair[1].lower(), pair[0]))


def actor() -> str:
    """Who acts, for the audit log."""
    from flask_login import current_user  # type: ignore[import-untyped, unused-ignore]

    return str(current_user.email)


def now() -> Any:
    """Nudge's clock."""
    return services().clock.now()


def rates() -> ReferenceRates:
    """The statutory reference rates from config."""
    statutory = services().settings.statutory
    return ReferenceRates(statutory.uk_base_rate, statutory.eu_reference_rate)


# -- the library -------------------------------------------------------------------------------------------
@bp.get("")
def index(org_id: int) -> ResponseReturnValue:
    """The library: cadences with the clients following each, then the policies their steps name."""
    with services().store.unit_of_work() as uow:
        listed = library_listing(uow, org_id, connection_ids=visible_ids())
    cadences = listed.get(CADENCE, [])
    return render_template(
        "cadences/index.html",
        cadences=cadences,
        policies={kind: listed.get(kind, []) for kind in POLICY_KINDS},
        empty=not listed,
        can_edit=can_edit(),
        kind_words=KIND_WORDS,
        describe_steps=describe_steps,
        describe_policy=describe_policy,
    )


@bp.post("/setup")
def setup(org_id: int) -> ResponseReturnValue:
    """Copy the install's starter library into an organization that has none."""
    require_editor()
    with services().store.unit_of_work() as uow:
        seeded = ensure_library(uow, org_id, services().settings, now())
        uow.commit()
    flash(
        "Your library is set up from the starter cadences and templates."
        if seeded
        else "Your library was already set up.",
        "success" if seeded else "info",
    )
    return redirect(url_for(".index", org_id=org_id))


@bp.post("/new")
def create(org_id: int) -> ResponseReturnValue:
    """A new cadence, a copy of another one (or a one-step cadence when there is none)."""
    require_editor()
    name = request.form.get("name", "")[: items.MAX_NAME + 50]
    copy_from = int_arg(request.form.get("copy_from"))
    with services().store.unit_of_work() as uow:
        try:
            body: Mapping[str, Any] = _starting_body(uow, org_id, copy_from)
            created = items.create_item(uow, org_id, CADENCE, name, body, actor=actor(), now=now())
            uow.commit()
        except (InvalidInput, UnknownRecord) as exc:
            flash(f"The cadence was not created: {exc.user_message}", "error")
            return redirect(url_for(".index", org_id=org_id))
    flash(f"Created the cadence “{created.name}”. Change its steps, then save.", "success")
    return redirect(url_for(".edit", org_id=org_id, item_id=created.id))


def _starting_body(uow: Any, org_id: int, copy_from: int | None) -> Mapping[str, Any]:
    if copy_from is not None:
        return items.get_item(uow, org_id, copy_from, CADENCE).body
    templates = [item.name for item in items.list_items(uow, org_id, TEMPLATE)]
    step: dict[str, Any] = {"id": "due", "offset": 0}
    if templates:
        step["remind"] = "due_today" if "due_today" in templates else templates[0]
    else:
        step["note"] = "Reminder due"
    return {"steps": [step]}


# -- the cadence editor --------------------------------------------------------------------------------------------
@bp.get("/<int:item_id>")
def edit(org_id: int, item_id: int) -> ResponseReturnValue:
    """The editor of one cadence at its current version."""
    with services().store.unit_of_work() as uow:
        item = _cadence_or_404(uow, org_id, item_id)
    return _editor(org_id, item, CadenceForm.of(item.body, item.version))


@bp.post("/<int:item_id>")
def save(org_id: int, item_id: int) -> ResponseReturnValue:
    """Save the cadence as a new version; a step button (add, remove, move) only redraws the editor."""
    require_editor()
    form = CadenceForm.of_form(request.form)
    op = request.form.get("op", "save")
    with services().store.unit_of_work() as uow:
        item = _cadence_or_404(uow, org_id, item_id)
    if op != "save":
        return _editor(org_id, item, form, open_steps=form.apply(op))
    body, errors = form.body(item.body)
    if errors:
        return _editor(org_id, item, form, errors=errors)
    with services().store.unit_of_work() as uow:
        try:
            saved = items.update_item(
                uow, org_id, item_id, body, base_version=form.base_version, kind=CADENCE, actor=actor(), now=now()
            )
            uow.commit()
        except InUse as exc:
            return _stale(org_id, item_id, form, exc)
        except InvalidInput as exc:
            return _editor(org_id, item, form, errors=cadence_errors(exc, form))
    if saved.version == item.version:
        flash("Nothing changed, so nothing was saved.", "info")
    else:
        flash(f"Saved “{saved.name}” as version {saved.version}. It applies from the next plan.", "success")
    return redirect(url_for(".edit", org_id=org_id, item_id=item_id))


def _stale(org_id: int, item_id: int, yours: CadenceForm, exc: InUse) -> ResponseReturnValue:
    """Someone else saved since the editor was opened: show theirs, with what this user typed beside it."""
    with services().store.unit_of_work() as uow:
        theirs = _cadence_or_404(uow, org_id, item_id)
    message = (
        f"Not saved: someone else changed this cadence while you were editing (it is now version {theirs.version}; "
        f"you started from version {yours.base_version}). Their version is shown below; make your change again."
    )
    return _editor(org_id, theirs, CadenceForm.of(theirs.body, theirs.version), stale=message, yours=yours)


@bp.post("/<int:item_id>/steps")
def steps(org_id: int, item_id: int) -> ResponseReturnValue:
    """htmx: the steps after adding, removing or moving one (nothing saved)."""
    require_editor()
    form = CadenceForm.of_form(request.form)
    opened = form.apply(request.form.get("op", ""))
    with services().store.unit_of_work() as uow:
        _cadence_or_404(uow, org_id, item_id)
        choices = _choices(uow, org_id)
    return render_template(
        "cadences/_steps.html",
        form=form,
        errors={},
        can_edit=True,
        open_steps=opened,
        **_step_context(choices, org_id, item_id),
    )


@bp.post("/<int:item_id>/preview")
def preview(org_id: int, item_id: int) -> ResponseReturnValue:
    """htmx: the unsaved cadence run forward on the chosen client, day by day, in words."""
    require_writer()
    form = CadenceForm.of_form(request.form)
    with services().store.unit_of_work() as uow:
        item = _cadence_or_404(uow, org_id, item_id)
    body, errors = form.body(item.body)
    clients = visible_clients(org_id)
    client_id = int_arg(request.form.get("preview_client"))
    if client_id is None or client_id not in {cid for cid, _ in clients}:
        errors.setdefault("preview_client", "Choose a client to preview on.")
    result: CadencePreview | None = None
    if not errors and client_id is not None:
        try:
            result = preview_cadence(
                services().store,
                org_id,
                services().settings.rules,
                item_id,
                body,
                client_id,
                now(),
                PREVIEW_DAYS,
                rates=rates(),
                connection_ids=visible_ids(),
            )
        except InvalidInput as exc:
            errors = cadence_errors(exc, form)
        except ChangeRefused as exc:
            errors = {"form": clean(exc.user_message)}
    return render_template(
        "cadences/_preview.html",
        result=result,
        errors=labelled(errors, form),
        summary=summarize(result),
        summary_of=day_summary,
        describe=describe_line,
        by_customer=by_customer,
        days=PREVIEW_DAYS,
    )


@bp.post("/<int:item_id>/impact")
def impact(org_id: int, item_id: int) -> ResponseReturnValue:
    """htmx: what saving the unsaved cadence would change for every client using it."""
    require_writer()
    form = CadenceForm.of_form(request.form)
    with services().store.unit_of_work() as uow:
        item = _cadence_or_404(uow, org_id, item_id)
    body, errors = form.body(item.body)
    result, errors = _impact(org_id, CADENCE, item_id, body, errors, lambda exc: cadence_errors(exc, form))
    return render_template(
        "cadences/_impact.html",
        result=result,
        errors=labelled(errors, form),
        sentence=impact_sentence,
        days=IMPACT_DAYS,
    )


def _impact(
    org_id: int, kind: str, item_id: int, body: Mapping[str, Any], errors: dict[str, str], placed: Any
) -> tuple[Impact | None, dict[str, str]]:
    if errors:
        return None, errors
    found = services()
    try:
        return impact_of_change(
            found.store,
            org_id,
            found.settings.rules,
            kind,
            item_id,
            body,
            now(),
            IMPACT_DAYS,
            rates=rates(),
            connection_ids=visible_ids(),
        ), {}
    except InvalidInput as exc:
        return None, placed(exc)
    except ChangeRefused as exc:
        return None, {"form": clean(exc.user_message)}


def _cadence_or_404(uow: Any, org_id: int, item_id: int) -> items.ItemView:
    try:
        return items.get_item(uow, org_id, item_id, CADENCE)
    except UnknownRecord:
        abort(404)


def _choices(uow: Any, org_id: int) -> dict[str, list[str]]:
    """Names the step fields can choose: templates, late fees, discounts."""
    names: dict[str, list[str]] = {TEMPLATE: [], LATE_FEE: [], DISCOUNT: [], PAYMENT_PLAN: []}
    for entry in items.list_items(uow, org_id):
        if entry.kind in names:
            names[entry.kind].append(entry.name)
    return names


def _step_context(choices: Mapping[str, list[str]], org_id: int, item_id: int) -> dict[str, Any]:
    """What the steps part of the editor needs besides the form: the names to choose from and the words."""
    return {
        "options": {
            "remind": [
                ("", "No reminder"),
                *((name, name) for name in choices[TEMPLATE] if name != "statement"),
                ("statement", "statement (the customer's statement, PDF attached)"),  # docs/statements.md
            ],
            "late_fee": [("", "No late fee"), *((name, name) for name in choices[LATE_FEE])],
            "discount": [("", "No discount"), *((name, name) for name in choices[DISCOUNT])],
        },
        "tones": TONES,
        "day_kinds": DAY_KINDS,
        "describe_step": describe_step,
        "max_offset": MAX_OFFSET_DAYS,
        "max_business": MAX_BUSINESS_OFFSET,
        "org_id": org_id,
        "item_id": item_id,
    }


def _editor(
    org_id: int,
    item: items.ItemView,
    form: CadenceForm,
    *,
    errors: Mapping[str, str] | None = None,
    stale: str = "",
    yours: CadenceForm | None = None,
    open_steps: set[int] | None = None,
) -> str:
    visible = visible_ids()
    with services().store.unit_of_work() as uow:
        choices = _choices(uow, org_id)
        listed = library_listing(uow, org_id, connection_ids=visible).get(CADENCE, [])
        versions = items.versions(uow, org_id, item.id, CADENCE)
        usage = items.usage(uow, org_id, item.id)
    mine = next((entry for entry in listed if entry.entry.item_id == item.id), None)
    followers = list(mine.clients) if mine is not None else []
    follower_ids = {cid for cid, _ in followers}
    others = [pair for pair in visible_clients(org_id) if pair[0] not in follower_ids]
    return render_template(
        "cadences/edit.html",
        item=item,
        form=form,
        errors=dict(errors or {}),
        form_errors=[message for key, message in (errors or {}).items() if key == "form"],
        error_count=len(errors or {}),
        stale=stale,
        yours=yours,
        followers=followers,
        customers=mine.customers if mine is not None else 0,
        default=mine.default if mine is not None else False,
        other_clients=others,
        versions=versions,
        in_use=bool(usage),
        usage=describe_usage(usage),
        can_edit=can_edit(),
        can_preview=g.get("role") in WRITERS,
        open_steps=open_steps or set(),
        error_steps={int(key.split("-")[1]) for key in (errors or {}) if key.startswith("steps-")},
        weekdays=WEEKDAYS,
        approvals=APPROVALS,
        catch_ups=CATCH_UPS,
        **_step_context(choices, org_id, item.id),
    )


# -- rename, delete, restore (cadences and policies) ----------------------------------------------------------------
@bp.post("/<int:item_id>/rename")
def rename(org_id: int, item_id: int) -> ResponseReturnValue:
    """Rename a cadence (its id stays: clients and customers keep following it)."""
    return _rename(org_id, item_id, CADENCE, url_for(".edit", org_id=org_id, item_id=item_id))


@bp.post("/<int:item_id>/delete")
def delete(org_id: int, item_id: int) -> ResponseReturnValue:
    """Delete a cadence nobody follows (refused, naming who follows it, while it is in use)."""
    return _delete(org_id, item_id, CADENCE, url_for(".edit", org_id=org_id, item_id=item_id))


@bp.post("/<int:item_id>/restore")
def restore(org_id: int, item_id: int) -> ResponseReturnValue:
    """Make an old version's steps current again (as a new version)."""
    return _restore(org_id, item_id, CADENCE, url_for(".edit", org_id=org_id, item_id=item_id))


def rename_item(org_id: int, item_id: int, kind: str, back: str) -> ResponseReturnValue:
    """Rename a library item from a posted `name` (shared with the templates screen)."""
    return _rename(org_id, item_id, kind, back)


def delete_item(org_id: int, item_id: int, kind: str, back: str, after: str) -> ResponseReturnValue:
    """Delete a library item (shared with the templates screen); `after` is where to go once deleted."""
    return _delete(org_id, item_id, kind, back, after)


def restore_item(org_id: int, item_id: int, kind: str, back: str) -> ResponseReturnValue:
    """Restore a posted `version` of a library item (shared with the templates screen)."""
    return _restore(org_id, item_id, kind, back)


def _rename(org_id: int, item_id: int, kind: str, back: str) -> ResponseReturnValue:
    require_editor()
    name = request.form.get("name", "")[: items.MAX_NAME + 50]
    with services().store.unit_of_work() as uow:
        try:
            old = items.get_item(uow, org_id, item_id, kind).name
            renamed = items.rename_item(uow, org_id, item_id, name, kind=kind, actor=actor(), now=now())
            uow.commit()
        except UnknownRecord:
            abort(404)
        except (InvalidInput, InUse) as exc:
            flash(f"Not renamed: {exc.user_message}", "error")
            return redirect(back)
    if renamed.name != old:
        flash(f"Renamed “{old}” to “{renamed.name}”.", "success")
    return redirect(back)


def _delete(org_id: int, item_id: int, kind: str, back: str, after: str = "") -> ResponseReturnValue:
    require_editor()
    words = KIND_WORDS[kind]
    with services().store.unit_of_work() as uow:
        try:
            item = items.get_item(uow, org_id, item_id, kind)
            users = items.usage(uow, org_id, item_id)
            if users:
                flash(
                    f"Not deleted: the {words} “{item.name}” is in use ({describe_usage(users)}). "
                    "Move them to another one first.",
                    "error",
                )
                return redirect(back)
            items.delete_item(uow, org_id, item_id, kind=kind, actor=actor(), now=now())
            uow.commit()
        except UnknownRecord:
            abort(404)
        except InUse as exc:
            flash(f"Not deleted: {exc.user_message}", "error")
            return redirect(back)
    flash(f"Deleted the {words} “{item.name}”. Its old versions are kept for the record.", "success")
    return redirect(after or url_for(".index", org_id=org_id))


def _restore(org_id: int, item_id: int, kind: str, back: str) -> ResponseReturnValue:
    require_editor()
    number = int_arg(request.form.get("version"))
    with services().store.unit_of_work() as uow:
        try:
            if number is None:
                raise UnknownRecord("choose a version", "version")
            restored = items.restore_version(uow, org_id, item_id, number, kind=kind, actor=actor(), now=now())
            uow.commit()
        except UnknownRecord as exc:
            if exc.field == "id":
                abort(404)
            flash(f"Not restored: {exc.user_message}", "error")
            return redirect(back)
        except (InvalidInput, InUse) as exc:
            flash(f"Not restored: {exc.user_message}", "error")
            return redirect(back)
    flash(f"Restored version {number} as version {restored.version}.", "success")
    return redirect(back)


# -- policies -----------------------------------------------------------------------------------------------------
@bp.post("/policies/new")
def create_policy(org_id: int) -> ResponseReturnValue:
    """A new policy of the posted kind, with a simple starting definition (or a copy)."""
    require_editor()
    kind = request.form.get("kind", "")
    if kind not in POLICY_KINDS:
        flash("Choose a late fee, a discount or a payment plan.", "error")
        return redirect(url_for(".index", org_id=org_id))
    name = request.form.get("name", "")[: items.MAX_NAME + 50]
    with services().store.unit_of_work() as uow:
        try:
            created = items.create_item(uow, org_id, kind, name, NEW_POLICY[kind], actor=actor(), now=now())
            uow.commit()
        except InvalidInput as exc:
            flash(f"The {KIND_WORDS[kind]} was not created: {exc.user_message}", "error")
            return redirect(url_for(".index", org_id=org_id))
    flash(f"Created the {KIND_WORDS[kind]} “{created.name}”. Set it up, then save.", "success")
    return redirect(url_for(".edit_policy", org_id=org_id, item_id=created.id))


@bp.get("/policies/<int:item_id>")
def edit_policy(org_id: int, item_id: int) -> ResponseReturnValue:
    """A policy's editor."""
    with services().store.unit_of_work() as uow:
        item = _policy_or_404(uow, org_id, item_id)
    return _policy_editor(org_id, item, policy_values(item.kind, item.body), item.version)


@bp.post("/policies/<int:item_id>")
def save_policy(org_id: int, item_id: int) -> ResponseReturnValue:
    """Save a policy as a new version (`base_version`: a stale save shows the other person's version)."""
    require_editor()
    with services().store.unit_of_work() as uow:
        item = _policy_or_404(uow, org_id, item_id)
    values = policy_values_of(item.kind, request.form)
    base_version = int_arg(request.form.get("base_version")) or 0
    body, errors = policy_body(item.kind, values, item.body)
    if errors:
        return _policy_editor(org_id, item, values, base_version, errors=errors)
    with services().store.unit_of_work() as uow:
        try:
            saved = items.update_item(
                uow, org_id, item_id, body, base_version=base_version, kind=item.kind, actor=actor(), now=now()
            )
            uow.commit()
        except InUse:
            with services().store.unit_of_work() as again:
                theirs = _policy_or_404(again, org_id, item_id)
            stale = (
                f"Not saved: someone else changed this policy while you were editing (it is now version "
                f"{theirs.version}). Their version is shown below; make your change again."
            )
            return _policy_editor(org_id, theirs, policy_values(theirs.kind, theirs.body), theirs.version, stale=stale)
        except InvalidInput as exc:
            return _policy_editor(org_id, item, values, base_version, errors=policy_errors(exc, item.kind))
    if saved.version == item.version:
        flash("Nothing changed, so nothing was saved.", "info")
    else:
        flash(f"Saved “{saved.name}” as version {saved.version}. It applies from the next plan.", "success")
    return redirect(url_for(".edit_policy", org_id=org_id, item_id=item_id))


@bp.post("/policies/<int:item_id>/impact")
def policy_impact(org_id: int, item_id: int) -> ResponseReturnValue:
    """htmx: what saving the unsaved policy would change for the clients whose cadences name it."""
    require_writer()
    with services().store.unit_of_work() as uow:
        item = _policy_or_404(uow, org_id, item_id)
    values = policy_values_of(item.kind, request.form)
    body, errors = policy_body(item.kind, values, item.body)
    result, errors = _impact(org_id, item.kind, item_id, body, errors, lambda exc: policy_errors(exc, item.kind))
    labels = {spec.key: spec.label for spec in POLICY_FIELDS[item.kind]}
    messages = [f"{labels[key]}: {text}" if key in labels else text for key, text in errors.items()]
    return render_template(
        "cadences/_impact.html", result=result, errors=messages, sentence=impact_sentence, days=IMPACT_DAYS
    )


@bp.post("/policies/<int:item_id>/rename")
def rename_policy(org_id: int, item_id: int) -> ResponseReturnValue:
    """Rename a policy (the cadences naming it follow, as new versions)."""
    kind = _policy_kind(org_id, item_id)
    return _rename(org_id, item_id, kind, url_for(".edit_policy", org_id=org_id, item_id=item_id))


@bp.post("/policies/<int:item_id>/delete")
def delete_policy(org_id: int, item_id: int) -> ResponseReturnValue:
    """Delete a policy no cadence names."""
    kind = _policy_kind(org_id, item_id)
    return _delete(org_id, item_id, kind, url_for(".edit_policy", org_id=org_id, item_id=item_id))


@bp.post("/policies/<int:item_id>/restore")
def restore_policy(org_id: int, item_id: int) -> ResponseReturnValue:
    """Make an old version of a policy current again."""
    kind = _policy_kind(org_id, item_id)
    return _restore(org_id, item_id, kind, url_for(".edit_policy", org_id=org_id, item_id=item_id))


def _policy_kind(org_id: int, item_id: int) -> str:
    require_editor()
    with services().store.unit_of_work() as uow:
        return _policy_or_404(uow, org_id, item_id).kind


def _policy_or_404(uow: Any, org_id: int, item_id: int) -> items.ItemView:
    try:
        item = items.get_item(uow, org_id, item_id)
    except UnknownRecord:
        abort(404)
    if item.kind not in POLICY_KINDS:
        abort(404)
    return item


def _policy_editor(
    org_id: int,
    item: items.ItemView,
    values: Mapping[str, Any],
    base_version: int,
    *,
    errors: Mapping[str, str] | None = None,
    stale: str = "",
) -> str:
    with services().store.unit_of_work() as uow:
        choices = _choices(uow, org_id)
        versions = items.versions(uow, org_id, item.id, item.kind)
        usage = items.usage(uow, org_id, item.id)
    return render_template(
        "cadences/policy.html",
        item=item,
        kind_word=KIND_WORDS[item.kind],
        fields=POLICY_FIELDS[item.kind],
        values=values,
        base_version=base_version,
        errors=dict(errors or {}),
        stale=stale,
        template_options=[(name, name) for name in choices[TEMPLATE]],
        versions=versions,
        usage=describe_usage(usage),
        in_use=bool(usage),
        summary=describe_policy(item.kind, item.body),
        can_edit=can_edit(),
        can_preview=g.get("role") in WRITERS,
        org_id=org_id,
    )
