"""The portal's error pages (health/portal/errors.py): in the reader's language, as HTML
for every error under /portal, and with a Danish text for every message a page can
show."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from health import PROJECT_ROOT
from health.pages import ERROR_TITLES, OTHER_ERROR_TITLE
from health.portal import languages
from health.portal.errors import PortalError

Portal = Any
ERIK = "1406580991"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _literal_messages(path: Path, call: str, position: int) -> list[str]:
    """The string literals passed as argument `position` to `call(...)` in `path`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == call
            and len(node.args) > position
        ):
            argument = node.args[position]
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                found.append(argument.value)
    return found


def _shown_messages() -> list[str]:
    portal = sorted((PROJECT_ROOT / "health" / "portal").glob("*.py"))
    raised = [m for path in portal for m in _literal_messages(path, "PortalError", 1)]
    eid = _literal_messages(PROJECT_ROOT / "health" / "auth" / "eid_login.py", "EidLoginError", 0)
    fallbacks = [
        "There is no page at this address.",
        "This page cannot be used that way.",
        "The server failed to process the request.",
        "The address holds a value the page cannot use.",
    ]
    return [*raised, *eid, *ERROR_TITLES.values(), OTHER_ERROR_TITLE, *fallbacks]


def test_every_message_a_page_can_show_has_its_danish() -> None:
    messages = _shown_messages()
    assert len(messages) > 40  # the scan found the raise sites
    for message in messages:
        danish = languages.translate("da", message)
        assert danish != message, f"no Danish for {message!r}"
        assert set(_PLACEHOLDER.findall(danish)) == set(_PLACEHOLDER.findall(message)), message


def test_a_message_is_translated_before_its_values_go_in() -> None:
    error = PortalError(404, "The test %(code)s is not in your record.", code="%(x)s<b>")
    assert error.detail == "The test %(x)s<b> is not in your record."
    assert error.text("da") == "Prøven %(x)s<b> findes ikke i din journal."
    lead = PortalError(409, "The change could not be saved:", detail_text="Version 3 is stale.")
    assert lead.text("da") == "Ændringen kunne ikke gemmes: Version 3 is stale."


def test_an_error_page_is_in_the_readers_language(demo_portal: Portal) -> None:
    danish, english = demo_portal.browser(language=None), demo_portal.browser(language="en")
    for reader in (danish, english):
        reader.login(ERIK)
    path = "/portal/results/no-such-test"
    answer = danish.client.get(path)
    assert answer.status_code == 404
    assert answer.headers["content-type"].startswith("text/html")
    assert '<html lang="da">' in answer.text and "Siden findes ikke" in answer.text
    assert "Prøven no-such-test findes ikke i din journal." in answer.text
    answer = english.client.get(path)
    assert answer.status_code == 404 and '<html lang="en">' in answer.text
    assert "The test no-such-test is not in your record." in answer.text


@pytest.mark.parametrize(
    ("path", "status", "danish"),
    [
        ("/portal/no-such-page", 404, "Der er ingen side på denne adresse."),
        (
            "/portal/timeline?page=many",
            400,
            "Adressen indeholder en værdi, som siden ikke kan bruge.",
        ),
        ("/portal/language?lang=xx", 400, "Sproget xx findes ikke; vælg da eller en."),
    ],
)
def test_every_error_under_the_portal_is_a_page(
    demo_portal: Portal, path: str, status: int, danish: str
) -> None:
    reader = demo_portal.browser(language=None)
    reader.login(ERIK)
    answer = reader.client.get(path, follow_redirects=False)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html")
    assert danish in answer.text
    assert "Traceback" not in answer.text
