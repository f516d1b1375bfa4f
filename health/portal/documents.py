"""Documents (DocumentReference) and their attachments: listing, reading and download.

An attachment's `data` (base64) is served as a download with a content type from a
short allowlist; anything else is application/octet-stream, so a pushed file can never
run as a page of this site. Text attachments are also shown inside the page, escaped.
https://hl7.org/fhir/R4/datatypes.html#Attachment
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from datetime import datetime

from health.portal.datatypes import (
    JsonDict,
    concept_text,
    first_time,
    parse_time,
    reference_display,
)
from health.portal.record import Record
from health.portal.sources import Reported, merge_facts, report_of

# Types served as themselves (each with an extension for the file name).
SAFE_CONTENT_TYPES = {
    "text/plain": "txt",
    "application/pdf": "pdf",
    "image/png": "png",
    "image/jpeg": "jpg",
    "application/fhir+json": "json",
    "application/json": "json",
}
FALLBACK_CONTENT_TYPE = "application/octet-stream"
# Text attachments larger than this are offered as a download only.
MAX_INLINE_TEXT = 200_000


@dataclass(frozen=True)
class AttachmentInfo:
    index: int
    title: str
    content_type: str
    size: int | None
    has_data: bool
    # Where the source keeps it, when it was not sent along (not fetched by us).
    url: str


@dataclass(frozen=True)
class Document:
    id: str
    title: str
    kind: str
    date: datetime | None
    authors: list[str]
    attachments: list[AttachmentInfo]
    entry: Reported


@dataclass(frozen=True)
class AttachmentFile:
    """An attachment ready to send: bytes, a safe content type and a file name."""

    content: bytes
    content_type: str
    filename: str


def documents(record: Record) -> list[Document]:
    """Every current document, newest first."""
    found = [
        document(entry.resource, entry)
        for entry in merge_facts(record.of_type("DocumentReference"), record)
        if entry.resource.get("status") != "entered-in-error"
    ]
    return sorted(found, key=lambda d: d.date.timestamp() if d.date else 0.0, reverse=True)


def document_of(resource: JsonDict, record: Record) -> Document:
    """One DocumentReference as the document page shows it."""
    return document(resource, Reported(resource, (report_of(resource, record),)))


def document(resource: JsonDict, entry: Reported) -> Document:
    attachments = []
    for index, content in enumerate(resource.get("content") or []):
        attachment = content.get("attachment") or {}
        attachments.append(
            AttachmentInfo(
                index=index,
                title=str(attachment.get("title") or ""),
                content_type=base_content_type(attachment.get("contentType")),
                size=attachment.get("size") if isinstance(attachment.get("size"), int) else None,
                has_data=isinstance(attachment.get("data"), str),
                url=str(attachment.get("url") or ""),
            )
        )
    return Document(
        id=str(resource.get("id")),
        title=str(resource.get("description") or "") or concept_text(resource.get("type"), "?"),
        kind=concept_text(resource.get("type")),
        date=first_time(resource, ("date",))
        or parse_time(((resource.get("context") or {}).get("period") or {}).get("end")),
        authors=[reference_display(a) for a in resource.get("author") or [] if a.get("display")],
        attachments=attachments,
        entry=entry,
    )


def base_content_type(value: object) -> str:
    """`text/plain; charset=utf-8` -> `text/plain` (lower case; empty when absent)."""
    return str(value or "").split(";")[0].strip().lower()


def attachment_file(resource: JsonDict, index: int) -> AttachmentFile | None:
    """The attachment's inline data, decoded, with a safe type; None if it has none."""
    contents = resource.get("content") or []
    if not 0 <= index < len(contents):
        return None
    attachment = contents[index].get("attachment") or {}
    data = attachment.get("data")
    if not isinstance(data, str):
        return None
    try:
        content = base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None
    declared = base_content_type(attachment.get("contentType"))
    extension = SAFE_CONTENT_TYPES.get(declared)
    content_type = declared if extension else FALLBACK_CONTENT_TYPE
    if content_type == "text/plain":
        content_type = "text/plain; charset=utf-8"
    stem = safe_filename(str(attachment.get("title") or resource.get("description") or "document"))
    return AttachmentFile(content, content_type, f"{stem}.{extension or 'bin'}")


def attachment_text(resource: JsonDict, index: int) -> str | None:
    """The attachment as text, when it is plain text small enough to show in the page."""
    found = attachment_file(resource, index)
    if found is None or not found.content_type.startswith("text/plain"):
        return None
    if len(found.content) > MAX_INLINE_TEXT:
        return None
    return found.content.decode("utf-8", errors="replace")


def safe_filename(title: str) -> str:
    """A file name stem of letters, digits, dashes and underscores (no quoting tricks)."""
    stem = re.sub(r"[^\w\-]+", "-", title, flags=re.UNICODE).strip("-_")
    return stem[:80] or "document"
