"""Attachments: decoded, served with a safe content type and a harmless file name."""

from __future__ import annotations

import base64

from health.portal.documents import attachment_file, attachment_text, safe_filename


def _document(content_type: str, payload: bytes, title: str = "Epikrise") -> dict[str, object]:
    attachment = {
        "contentType": content_type,
        "data": base64.b64encode(payload).decode(),
        "title": title,
    }
    return {"resourceType": "DocumentReference", "id": "d", "content": [{"attachment": attachment}]}


def test_text_is_decoded_and_served_as_text() -> None:
    document = _document("text/plain; charset=utf-8", "Kære Erik".encode())
    found = attachment_file(document, 0)
    assert found is not None
    assert found.content_type == "text/plain; charset=utf-8"
    assert found.filename == "Epikrise.txt"
    assert attachment_text(document, 0) == "Kære Erik"


def test_a_page_or_script_is_never_served_as_one() -> None:
    document = _document("text/html", b"<script>alert(1)</script>", title='x"; evil=.html')
    found = attachment_file(document, 0)
    assert found is not None
    assert found.content_type == "application/octet-stream"
    assert found.filename == "x-evil-html.bin"
    assert attachment_text(document, 0) is None


def test_missing_attachments_are_none() -> None:
    document = _document("text/plain", b"x")
    assert attachment_file(document, 1) is None
    assert attachment_file({"content": [{"attachment": {"url": "http://x"}}]}, 0) is None
    assert safe_filename("../../etc/passwd") == "etc-passwd"
