"""The development eID end to end: discovery, login, tokens, userinfo and logout over HTTP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from authlib.integrations.httpx_client import OAuth2Client
from fastapi.testclient import TestClient

ERIK = "1406580991"  # a seeded citizen: Erik Mortensen, born 1958-06-14
ISSUER = "http://testserver/eid"
PORTAL, PUBLIC_APP, OTHER_RP = "health-portal", "citizen-app", "other-service"
SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"
HIGH = "http://eidas.europa.eu/LoA/high"

# A factory of relying parties by client_id (tests/eid/conftest.py).
RelyingParties = Callable[[str], Any]


def test_discovery_names_the_endpoints_and_the_key(client: TestClient) -> None:
    document = client.get("/eid/.well-known/openid-configuration").json()
    assert document["issuer"] == ISSUER
    assert document["authorization_endpoint"] == f"{ISSUER}/authorize"
    assert document["token_endpoint"] == f"{ISSUER}/token"
    assert document["userinfo_endpoint"] == f"{ISSUER}/userinfo"
    assert document["end_session_endpoint"] == f"{ISSUER}/logout"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["subject_types_supported"] == ["pairwise"]
    assert "dk:cpr" in document["claims_supported"]
    keys = client.get(document["jwks_uri"].removeprefix("http://testserver")).json()["keys"]
    assert [key["alg"] for key in keys] == document["id_token_signing_alg_values_supported"]
    assert all("d" not in key for key in keys)  # public halves only


def test_login_form_lists_test_persons_and_levels(relying_party: RelyingParties) -> None:
    form, _ = relying_party(PORTAL).authorize()
    assert form.status_code == 200
    assert form.headers["content-type"].startswith("text/html")
    assert '<label for="national_id">' in form.text
    assert 'name="national_id"' in form.text
    assert f'name="person" value="{ERIK}"' in form.text and "Erik Mortensen" in form.text
    assert 'value="substantial" checked' in form.text
    assert 'name="csrf_token"' in form.text


def test_portal_login_gives_a_verified_id_token_and_userinfo(
    relying_party: RelyingParties, client: TestClient
) -> None:
    portal = relying_party(PORTAL)
    login = portal.login(ERIK)
    answer = portal.exchange(login, auth=portal.basic_auth)  # client_secret_basic
    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    tokens = answer.json()
    assert tokens["token_type"] == "Bearer"
    claims = portal.verified_id_token(tokens["id_token"], login)
    assert claims["dk:cpr"] == ERIK
    assert claims["name"] == "Erik Mortensen"
    assert claims["birthdate"] == "1958-06-14"
    assert claims["acr"] == SUBSTANTIAL
    assert claims["sub"] != ERIK and ERIK not in claims["sub"]
    assert claims["auth_time"] <= claims["iat"] < claims["exp"]

    info = client.get(
        "/eid/userinfo", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert info.status_code == 200
    assert info.json() == {
        "sub": claims["sub"],
        "name": "Erik Mortensen",
        "birthdate": "1958-06-14",
        "dk:cpr": ERIK,
    }


def test_authlib_client_as_relying_party(relying_party: RelyingParties, client: TestClient) -> None:
    """A confidential client using Authlib's own OAuth2 client, client_secret_post."""
    portal = relying_party(PORTAL)
    login = portal.login("0309940990", person="0309940990")
    with OAuth2Client(
        portal.client_id,
        portal.secret,
        token_endpoint_auth_method="client_secret_post",
        redirect_uri=portal.redirect_uri,
        transport=client._transport,
        base_url="http://testserver",
    ) as oauth:
        tokens = oauth.fetch_token(
            "http://testserver/eid/token", code=login.code, code_verifier=login.verifier
        )
    claims = portal.verified_id_token(tokens["id_token"], login)
    assert claims["name"] == "Camilla Frederiksen"


def test_public_client_with_pkce_and_an_unknown_person_at_level_high(
    relying_party: RelyingParties,
) -> None:
    app = relying_party(PUBLIC_APP)
    login = app.login("010203-4321", acr="high")  # an unseeded CPR, with the hyphen
    answer = app.exchange(login)
    assert answer.status_code == 200, answer.text
    claims = app.verified_id_token(answer.json()["id_token"], login)
    assert claims["dk:cpr"] == "0102034321"
    assert claims["name"] == "Test Person"
    assert claims["birthdate"] == "2003-02-01"  # seventh digit 4, year 03: the 2000s
    assert claims["acr"] == HIGH


def test_dutch_bsn_is_accepted_without_a_birthdate(relying_party: RelyingParties) -> None:
    app = relying_party(PUBLIC_APP)
    login = app.login("111222333")
    claims = app.verified_id_token(app.exchange(login).json()["id_token"], login)
    assert claims["dk:cpr"] == "111222333"
    assert "birthdate" not in claims


def test_acr_values_preselect_the_level(relying_party: RelyingParties) -> None:
    form, _ = relying_party(PORTAL).authorize(acr_values=HIGH)
    assert 'value="high" checked' in form.text


def test_sub_is_pairwise_per_client_and_stable(relying_party: RelyingParties) -> None:
    subs = []
    for client_id in (PORTAL, OTHER_RP):
        for _ in range(2):
            party = relying_party(client_id)
            login = party.login(ERIK)
            id_token = party.exchange(login, auth=party.basic_auth).json()["id_token"]
            subs.append(party.verified_id_token(id_token, login)["sub"])
    assert subs[0] == subs[1] and subs[2] == subs[3]
    assert subs[0] != subs[2]
    assert ERIK not in subs


def test_logout_with_id_token_hint_redirects_and_ends_the_tokens(
    relying_party: RelyingParties, client: TestClient
) -> None:
    other = relying_party(OTHER_RP)
    login = other.login(ERIK)
    tokens = other.exchange(login, auth=other.basic_auth).json()
    bearer = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert client.get("/eid/userinfo", headers=bearer).status_code == 200

    answer = client.get(
        "/eid/logout",
        params={
            "id_token_hint": tokens["id_token"],
            "post_logout_redirect_uri": other.logout_uris[0],
            "state": "bye-1",
        },
        follow_redirects=False,
    )
    assert answer.status_code == 302
    location = urlsplit(answer.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == other.logout_uris[0]
    assert parse_qs(location.query)["state"] == ["bye-1"]
    assert client.get("/eid/userinfo", headers=bearer).status_code == 401


def test_logout_to_an_unregistered_uri_shows_a_page_instead(
    relying_party: RelyingParties, client: TestClient
) -> None:
    other = relying_party(OTHER_RP)
    login = other.login(ERIK)
    id_token = other.exchange(login, auth=other.basic_auth).json()["id_token"]
    answer = client.get(
        "/eid/logout",
        params={"id_token_hint": id_token, "post_logout_redirect_uri": "https://evil.example/"},
        follow_redirects=False,
    )
    assert answer.status_code == 200
    assert "location" not in answer.headers
    assert "You are logged out" in answer.text


def test_logout_with_a_forged_id_token_hint_is_refused(client: TestClient) -> None:
    answer = client.get(
        "/eid/logout",
        params={"id_token_hint": "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", "state": "x"},
        follow_redirects=False,
    )
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/html")


def test_userinfo_needs_a_valid_bearer_token(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eA=="}):
        answer = client.get("/eid/userinfo", headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_the_callback_is_reached_with_httpx_following_the_redirect(
    relying_party: RelyingParties,
) -> None:
    """The code arrives at the registered redirect URI (the portal's callback path)."""
    portal = relying_party(PORTAL)
    form, _ = portal.authorize()
    answer = portal.submit(form.text, person=ERIK)
    assert httpx.URL(answer.headers["location"]).path == "/portal/callback"
