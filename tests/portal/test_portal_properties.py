"""Any address a citizen's browser can be sent to in the portal is answered with a page,
a redirect within this site, or an error page; never a 500.

Paths and query values are drawn odd in the ways links, bookmarks and hand-edited
addresses make them (empty, huge, negative, not numbers, not dates, control characters,
other citizens' ids, absolute URLs to elsewhere), for a citizen signed in to the demo
world.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.portal.conftest import Browser, Portal

ODD = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "0",
            "-1",
            "1",
            "99999999999999999999",
            "1e3",
            "2024-02-30",
            "2024-13",
            "2024",
            "2024-01-01T00:00:00Z",
            "\x00",
            "\x1f",
            "a" * 3000,
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "javascript:alert(1)",
            "/portal/timeline",
            "en",
            "da",
            "xx",
            "8867-4",
            "http://loinc.org|8867-4",
            "../../fhir/metadata",
            "Patient/x",
            "æøå",
        ]
    ),
    st.text(max_size=20),
)
PAGES = [
    "/portal/",
    "/portal/language",
    "/portal/timeline",
    "/portal/results",
    "/portal/results/{}",
    "/portal/medications",
    "/portal/vaccinations",
    "/portal/diagnoses",
    "/portal/appointments",
    "/portal/documents",
    "/portal/documents/{}",
    "/portal/documents/{}/attachments/{}",
    "/portal/summary",
    "/portal/record.json",
    "/portal/log",
    "/portal/access",
    "/portal/attorney",
    "/portal/callback",
]
PROPERTIES = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PARAMETERS = ["lang", "next", "page", "from", "to", "before", "kind", "name", "code", "state"]


@pytest.fixture
def signed_in(demo_portal: Portal) -> Browser:
    browser = demo_portal.browser()
    answer = browser.login()
    assert answer.status_code in (302, 303), answer.text
    return browser


@PROPERTIES
@given(
    page=st.sampled_from(PAGES),
    parts=st.lists(ODD, min_size=2, max_size=2),
    query=st.lists(st.tuples(st.sampled_from(PARAMETERS), ODD), max_size=4),
)
def test_any_portal_address_is_a_page_a_local_redirect_or_an_error_page(
    signed_in: Browser, page: str, parts: list[str], query: list[tuple[str, str]]
) -> None:
    path = page.format(*(quote(part, safe="") or "x" for part in parts))
    params = "&".join(f"{quote(name)}={quote(value, safe='')}" for name, value in query)
    answer = signed_in.client.get(f"{path}?{params}", follow_redirects=False)
    assert answer.status_code < 500, (path, params, answer.text[:500])
    if answer.status_code in (301, 302, 303, 307, 308):
        target = urlsplit(answer.headers["location"])
        # Within this site, or to the eID to log in again.
        assert target.netloc in ("", "testserver"), answer.headers["location"]


FORMS = {
    "/portal/access/block": ["party"],
    "/portal/access/permit": ["party"],
    "/portal/access/hide": ["episode"],
    "/portal/access/withdraw": ["consent"],
    "/portal/act-for": ["patient"],
    "/portal/attorney": ["national_id", "name", "end"],
    "/portal/attorney/revoke": ["related_person"],
}
FORM_VALUES = st.one_of(
    ODD,
    st.sampled_from(
        [
            "Practitioner/x",
            "Organization/x",
            "PractitionerRole/x",
            "EpisodeOfCare/x",
            "Consent/x",
            "RelatedPerson/x",
            "0101801234",
            "0101801235",
            "2099-12-31",
            "1999-01-01",
        ]
    ),
)


@PROPERTIES
@given(
    action=st.sampled_from(sorted(FORMS)),
    values=st.lists(FORM_VALUES, min_size=3, max_size=3),
    with_csrf=st.booleans(),
)
def test_any_portal_form_is_answered_with_a_page_a_local_redirect_or_an_error_page(
    signed_in: Browser, action: str, values: list[str], with_csrf: bool
) -> None:
    fields = dict(zip(FORMS[action], values, strict=False))
    if with_csrf:
        fields["csrf_token"] = signed_in.csrf_token()
    answer = signed_in.client.post(action, data=fields, follow_redirects=False)
    assert answer.status_code < 500, (action, fields, answer.text[:500])
    if not with_csrf:
        assert answer.status_code in (400, 403), answer.text[:500]
    if answer.status_code in (301, 302, 303, 307, 308):
        assert urlsplit(answer.headers["location"]).netloc in ("", "testserver")


COOKIES = [
    "health_portal_session",
    "health_portal_browser",
    "health_language",
    "health_auth_browser",
    "health_eid_browser",
]


@PROPERTIES
@given(
    page=st.sampled_from([*PAGES, "/portal/login", "/auth/authorize", "/eid/authorize"]),
    cookies=st.dictionaries(st.sampled_from(COOKIES), ODD, max_size=3),
    language=st.one_of(st.none(), ODD),
)
def test_any_cookie_or_language_is_answered_as_a_stranger_would_be(
    demo_portal: Portal, page: str, cookies: dict[str, str], language: str | None
) -> None:
    browser = demo_portal.browser(language=None)
    for name, value in cookies.items():
        browser.client.cookies.set(name, quote(value, safe=""), path="/")
    headers = {}
    if language is not None and language.isascii():
        headers["Accept-Language"] = language
    answer = browser.client.get(page.format("x", "0"), headers=headers, follow_redirects=False)
    assert answer.status_code < 500, (page, cookies, language, answer.text[:500])
    # Made-up cookies sign nobody in.
    assert 'action="/portal/logout"' not in answer.text
