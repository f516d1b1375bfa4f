"""Portal sessions: the cookie's flags and signature, a new session id at every login,
the idle and absolute timeouts, and the sweep of ended sessions.

Time is not waited for: a test ages a session by moving its timestamps back in
portal_session, as that much time passing would.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from http.cookies import SimpleCookie
from typing import Any

from sqlalchemy import select, update

from health.db.engine import Database
from health.db.tables import portal_session
from health.portal.languages import LANGUAGE_COOKIE
from health.portal.sessions import SESSION_COOKIE

Browser = Any  # tests/portal/conftest.py
Portal = Any
BROWSER_COOKIE = "health_portal_browser"
LOGGED_IN = "Erik Mortensen"
LOGGED_OUT = "Log in with MitID"


def _cookies(set_cookie_headers: list[str]) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in set_cookie_headers:
        jar.load(header)
    return jar


def _rows(database: Database) -> list[Any]:
    with database.session(write=False) as session:
        return list(session.execute(select(portal_session)).all())


def _age(database: Database, **shift: timedelta) -> None:
    """Move every session's timestamps back by the given amounts."""
    with database.session(write=True) as session:
        for row in session.execute(select(portal_session)).all():
            values: dict[str, datetime] = {
                column: getattr(row, column) - amount for column, amount in shift.items()
            }
            session.execute(
                update(portal_session)
                .where(portal_session.c.id_hash == row.id_hash)
                .values(**values)
            )


def test_the_cookies_are_httponly_samesite_lax_and_for_the_portal_only(
    browser: Browser,
) -> None:
    start = browser.client.get("/portal/login", follow_redirects=False)
    answer = browser.callback(browser.authenticate(start.headers["location"]))
    cookies = _cookies(start.headers.get_list("set-cookie") + answer.headers.get_list("set-cookie"))
    for name in (BROWSER_COOKIE, SESSION_COOKIE):
        cookie = cookies[name]
        assert cookie["httponly"] is True
        assert cookie["samesite"].lower() == "lax"
        assert cookie["path"] == "/portal"
        assert not cookie["secure"]  # the base URL is plain http
        assert not cookie["max-age"] and not cookie["expires"]  # gone when the browser closes


def test_the_cookies_are_secure_when_the_base_url_is_https(
    make_portal: Callable[..., Portal],
) -> None:
    portal = make_portal(base_url="https://testserver")
    browser = portal.browser()
    start = browser.client.get("/portal/login", follow_redirects=False)
    answer = browser.callback(browser.authenticate(start.headers["location"]))
    assert answer.status_code == 303, answer.text
    cookies = _cookies(start.headers.get_list("set-cookie") + answer.headers.get_list("set-cookie"))
    assert cookies[BROWSER_COOKIE]["secure"] is True
    assert cookies[SESSION_COOKIE]["secure"] is True
    assert LOGGED_IN in browser.home().text


def test_the_database_holds_a_hash_not_the_cookies_session_id(
    browser: Browser, database: Database
) -> None:
    browser.login()
    session_id = browser.session_cookie.rpartition(".")[0]
    [row] = _rows(database)
    assert row.id_hash != session_id and session_id not in row.id_hash


def test_a_tampered_cookie_opens_nothing(portal: Portal, browser: Browser) -> None:
    browser.login()
    session_id, _, signature = browser.session_cookie.rpartition(".")
    stranger = portal.browser()
    for forged in (session_id, f"{session_id}.{signature[:-2]}xx", f"x{session_id}.{signature}"):
        page = stranger.client.get(
            "/portal/", headers={"Cookie": f"{SESSION_COOKIE}={forged}; {LANGUAGE_COOKIE}=en"}
        )
        assert page.status_code == 200 and LOGGED_OUT in page.text
    assert LOGGED_IN in browser.home().text


def test_every_login_gets_a_new_session_id(portal: Portal, database: Database) -> None:
    browser = portal.browser()
    # A session cookie planted before login (here: one's own earlier session) is never
    # taken over by the login that follows; the earlier session ends.
    browser.login(national_id="0101901234")
    before = browser.session_cookie
    browser.login()
    after = browser.session_cookie
    assert after is not None and after != before
    assert LOGGED_IN in browser.home().text
    stranger = portal.browser()
    page = stranger.client.get(
        "/portal/", headers={"Cookie": f"{SESSION_COOKIE}={before}; {LANGUAGE_COOKIE}=en"}
    )
    assert LOGGED_OUT in page.text
    assert len(_rows(database)) == 1


def test_a_session_ends_after_the_idle_timeout(
    portal: Portal, browser: Browser, database: Database
) -> None:
    idle = timedelta(minutes=portal.settings.session_idle_minutes)
    browser.login()
    _age(database, last_seen_at=idle - timedelta(minutes=1))
    assert LOGGED_IN in browser.home().text  # still open, and seen again just now
    _age(database, last_seen_at=idle - timedelta(minutes=1))
    assert LOGGED_IN in browser.home().text  # the request before restarted the idle time
    _age(database, last_seen_at=idle + timedelta(minutes=1))
    page = browser.home()
    assert LOGGED_OUT in page.text
    assert browser.session_cookie is None  # the page cleared the cookie
    assert _rows(database) == []


def test_a_session_ends_after_the_absolute_timeout_however_active(
    portal: Portal, browser: Browser, database: Database
) -> None:
    absolute = timedelta(hours=portal.settings.session_absolute_hours)
    browser.login()
    _age(database, created_at=absolute - timedelta(minutes=1))
    assert LOGGED_IN in browser.home().text
    _age(database, created_at=timedelta(minutes=2))
    assert LOGGED_OUT in browser.home().text
    assert _rows(database) == []


def test_the_timeouts_come_from_the_settings(make_portal: Callable[..., Portal]) -> None:
    portal = make_portal(session_idle_minutes=0)
    browser = portal.browser()
    assert browser.login().status_code == 303
    assert LOGGED_OUT in browser.home().text


def test_ended_sessions_are_swept_at_the_next_login(portal: Portal, database: Database) -> None:
    first, second = portal.browser(), portal.browser()
    first.login(national_id="0101901234")
    _age(
        database,
        created_at=timedelta(hours=9),
        last_seen_at=timedelta(hours=9),
        expires_at=timedelta(hours=9),
    )
    second.login()
    assert [row.national_id for row in _rows(database)] == ["1406580991"]
