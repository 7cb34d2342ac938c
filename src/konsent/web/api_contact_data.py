"""REST API: contact labels and attributes, a contact's labels and values, search, CSV export (M5, M4, S4).

Paths are their own first segments (`/contact-labels`, `/contact-attributes`, `/contact-search`,
`/contact-export`) in the `contacts` scope area; a contact's data is under `/contacts/{id}/data`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from konsent.flows.contact_data import attributes, csv_export, labels, profile, search
from konsent.flows.inbox import scope
from konsent.flows.organisation import names
from konsent.web.deps import Caller, api_caller, get_ctx

router = APIRouter(prefix="/api/v1", tags=["contacts"])
MAX_ID = 2**63 - 1
Id = Annotated[int, Path(ge=1, le=MAX_ID)]
Text = Annotated[str, Field(max_length=500)]


class LabelIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "VIP"}]})
    name: str = Field(max_length=200)


class AttributeIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "key": "customer_number",
                    "name": "Kundennummer",
                    "type": "text",
                    "purpose": "Zuordnung von Anfragen zu Bestellungen",
                    "retention": "after_last_contact",
                    "retention_days": 730,
                }
            ]
        },
    )
    key: str = Field(max_length=63, description="Lower-case letters, digits and _; fixed once created.")
    name: str = Field("", max_length=200)
    type: Literal["text", "number", "date", "choice"]
    options: list[Annotated[str, Field(max_length=80)]] = Field(default_factory=list, max_length=50)
    purpose: str = Field(max_length=300, description="Why this attribute is kept (shown in exports).")
    retention: Literal["until_erasure", "after_set", "after_last_contact"]
    retention_days: int | None = Field(None, ge=1, le=3650)


class AttributePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=200)
    options: list[Annotated[str, Field(max_length=80)]] | None = Field(None, max_length=50)
    purpose: str | None = Field(None, max_length=300)
    retention: Literal["until_erasure", "after_set", "after_last_contact"] | None = None
    retention_days: int | None = Field(None, ge=1, le=3650)


class ContactDataIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"labels": ["VIP"], "attributes": {"customer_number": "K-4711"}}]},
    )
    name: str | None = Field(None, max_length=200, description="The display name; empty clears it.")
    labels: list[Annotated[str | int, Field()]] | None = Field(
        None, max_length=500, description="Exactly these labels (ids or names); omitted: unchanged."
    )
    attributes: dict[Annotated[str, Field(max_length=63)], Text | None] | None = Field(
        None, max_length=100, description="Values by key; null or empty deletes one; others unchanged."
    )


def _label(r: Any) -> dict[str, Any]:
    return {"id": r.id, "name": r.name}


def _attribute(d: Any) -> dict[str, Any]:
    return {
        "id": d.id,
        "key": d.key,
        "name": d.name,
        "type": d.type,
        "options": list(d.options or []),
        "purpose": d.purpose,
        "retention": d.retention,
        "retention_days": d.retention_days,
    }


@router.get("/contact-labels")
def list_labels(request: Request, caller: Caller = Depends(api_caller)) -> list[dict[str, Any]]:
    """The tenant's labels for contacts."""
    caller.require("contacts.read")
    with get_ctx(request).db.read() as s:
        return [_label(r) for r in labels.list_labels(s, caller.tenant_id)]


@router.post("/contact-labels", status_code=201)
def create_label(body: LabelIn, request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        return _label(labels.define_label(s, caller.tenant_id, caller.actor, body.name))


@router.patch("/contact-labels/{label_id}")
def rename_label(
    label_id: Id, body: LabelIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        return _label(labels.rename_label(s, caller.tenant_id, caller.actor, label_id, body.name))


@router.delete("/contact-labels/{label_id}")
def delete_label(label_id: Id, request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """Delete a label; it is taken off every contact."""
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        return {"id": label_id, "contacts": labels.delete_label(s, caller.tenant_id, caller.actor, label_id)}


@router.get("/contact-attributes")
def list_attributes(request: Request, caller: Caller = Depends(api_caller)) -> list[dict[str, Any]]:
    """The tenant's attribute definitions with type, options, purpose and retention rule."""
    caller.require("contacts.read")
    with get_ctx(request).db.read() as s:
        return [_attribute(d) for d in attributes.list_attributes(s, caller.tenant_id)]


@router.post("/contact-attributes", status_code=201)
def create_attribute(
    body: AttributeIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Define an attribute; a purpose and a retention rule are required (L1)."""
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        d = attributes.define_attribute(
            s,
            caller.tenant_id,
            caller.actor,
            key=body.key,
            name=body.name,
            type=body.type,
            options=body.options,
            purpose=body.purpose,
            retention=body.retention,
            retention_days=body.retention_days,
        )
        return _attribute(d)


@router.patch("/contact-attributes/{attribute_id}")
def update_attribute(
    attribute_id: Id, body: AttributePatch, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Change name, options, purpose or retention; key and type stay."""
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        d = attributes.update_attribute(
            s,
            caller.tenant_id,
            caller.actor,
            attribute_id,
            name=body.name,
            options=body.options,
            purpose=body.purpose,
            retention=body.retention,
            retention_days=body.retention_days,
        )
        return _attribute(d)


@router.delete("/contact-attributes/{attribute_id}")
def delete_attribute(
    attribute_id: Id, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Delete an attribute and every contact's value of it."""
    caller.require("settings.manage")
    with get_ctx(request).db.write() as s:
        n = attributes.delete_attribute(s, caller.tenant_id, caller.actor, attribute_id)
        return {"id": attribute_id, "values": n}


@router.get("/contacts/{contact_id}/data")
def contact_data(contact_id: Id, request: Request, caller: Caller = Depends(api_caller)) -> dict[str, Any]:
    """The contact's labels and attribute values (a view of personal data, audited)."""
    caller.require("contacts.personal")
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        data = profile.read_audited(ctx, s, caller.tenant_id, caller.actor, contact_id)
        return {"id": data.contact_id, "labels": data.labels, "attributes": data.attributes}


@router.put("/contacts/{contact_id}/data")
def save_contact_data(
    contact_id: Id, body: ContactDataIn, request: Request, caller: Caller = Depends(api_caller)
) -> dict[str, Any]:
    """Set the display name, exactly these labels and these attribute values in one transaction;
    a value of the wrong type or an unknown choice → 422 and nothing is changed (M5)."""
    caller.require("contacts.personal")
    caller.require("contacts.edit")
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        changed = profile.save(
            ctx,
            s,
            caller.tenant_id,
            caller.actor,
            contact_id,
            name=body.name,
            label_refs=body.labels,
            values=body.attributes,
        )
        data = profile.read(ctx, s, caller.tenant_id, contact_id)
    return {"id": contact_id, "changed": changed, "labels": data.labels, "attributes": data.attributes}


@router.get("/contact-search")
def search_contacts(
    request: Request,
    q: str = Query("", max_length=100, description="A name fragment (3+ characters), a number or `#id`."),
    label: str = Query("", max_length=100, description="A label id or name."),
    attribute: str = Query("", max_length=63, description="An attribute key ..."),
    value: str = Query("", max_length=500, description="... and the exact value it must have."),
    limit: int = Query(50, ge=1, le=500),
    caller: Caller = Depends(api_caller),
) -> list[dict[str, Any]]:
    """Contacts matching every given criterion, newest first, with their display names (audited)."""
    caller.require("contacts.personal")
    ctx = get_ctx(request)
    query = search.Query(text=q, label=label, attribute=attribute, value=value)
    with ctx.db.write() as s:
        only = scope.contact_filter(s, caller)
        opened: dict[int, str] = {}  # names the search opened to confirm matches: not opened twice
        found = search.search_audited(
            ctx, s, caller.tenant_id, caller.actor, query, only=only, limit=limit, names=opened
        )
        shown = {**names.display_names(ctx, s, [c for c in found if c.id not in opened]), **opened}
        tags = labels.labels_of_many(s, caller.tenant_id, [c.id for c in found])
    return [{"id": c.id, "name": shown.get(c.id, ""), "labels": tags.get(c.id, [])} for c in found]


@router.get("/contact-export", response_class=Response)
def export_contacts(
    request: Request,
    fields: str = Query(
        max_length=5000, description="Comma-separated, e.g. `id,name,labels,attribute:city`."
    ),
    caller: Caller = Depends(api_caller),
) -> Response:
    """Every contact in the caller's scope as CSV (UTF-8, `;`), the chosen fields only; owners, admins
    and the DPO only; recorded in the audit log with fields and row count (S4)."""
    caller.require("contacts.export")
    ctx = get_ctx(request)
    with ctx.db.write() as s:
        only = scope.contact_filter(s, caller)
        body, _ = csv_export.export_csv(ctx, s, caller.tenant_id, caller.actor, fields.split(","), only=only)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": 'attachment; filename="contacts.csv"', "cache-control": "no-store"},
    )
