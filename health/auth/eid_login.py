"""Logging in with the national eID: this app as an OpenID Connect relying party.

Used by the citizen portal (health/portal/) and by the SMART authorization server's
authorize step. It reaches the eID only over HTTP, through the provider's discovery
document, as it would the national eID broker (MitID, DigiD) in production; the
development eID at /eid is just another provider to it.

The authorization code flow with state, nonce and PKCE (S256), a confidential client
(client_secret_basic), and an ID token verified in full before anyone is believed:
https://openid.net/specs/openid-connect-core-1_0.html#CodeFlowAuth and
https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import quote

import httpx
from authlib.common.security import generate_token
from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ClaimError,
    ExpiredTokenError,
    InvalidKeyIdError,
    JoseError,
)
from joserfc.jwk import KeySet
from sqlalchemy.orm import Session

from health.auth.oidc_logins import OidcLoginStore, PendingLogin
from health.auth.tokens import MALFORMED_JWT
from health.settings import AssuranceLevel, Settings

log = logging.getLogger(__name__)

# eIDAS levels of assurance, lowest first, and their `acr` values: the URIs of the
# eIDAS SAML attribute profile, which MitID and DigiD brokers use as well.
EIDAS_LEVELS: tuple[AssuranceLevel, ...] = ("low", "substantial", "high")
ACR_URIS: dict[AssuranceLevel, str] = {
    level: f"http://eidas.europa.eu/LoA/{level}" for level in EIDAS_LEVELS
}
_LEVEL_OF_ACR = {uri: level for level, uri in ACR_URIS.items()}
# Asymmetric signatures only: never `none`, and never an HMAC keyed with a public key.
ID_TOKEN_ALGORITHMS = ("ES256", "RS256")
# Clock skew tolerated on exp and iat.
LEEWAY_SECONDS = 60
SCOPE = "openid profile"
# The column widths of oidc_login (health/db/tables.py).
_MAX_PURPOSE, _MAX_CONTINUE_TO, _MAX_BROWSER_ID = 16, 1024, 64
_MAX_NATIONAL_ID, _MAX_NAME = 32, 256
# RFC 6749 error codes are ASCII words; anything else the callback brings is not shown.
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


@dataclass(frozen=True)
class EidIdentity:
    """Who logged in, as the eID's verified ID token says."""

    national_id: str
    name: str
    birth_date: str | None  # ISO date
    acr: str  # "low" | "substantial" | "high"
    id_token: str  # raw, for id_token_hint at logout


class EidLoginError(Exception):
    """A login that cannot be completed; the message is safe to show the user."""

    # The HTTP status a page reporting this error answers with.
    status = 400


class InsufficientAssurance(EidLoginError):
    """The login's level of assurance is below settings.eid_min_acr."""

    status = 403


class EidUnavailable(EidLoginError):
    """The eID could not be reached, or answered with something other than the protocol."""

    status = 502


def callback_error(error: str) -> EidLoginError:
    """The error an eID sent back to the redirect URI, for the user.

    https://datatracker.ietf.org/doc/html/rfc6749#section-4.1.2.1. Its
    error_description is not shown: anyone can put a link with any text in it.
    """
    if error == "access_denied":
        return EidLoginError("The login was cancelled or refused at the eID. Log in again.")
    if error == "login_required" or error == "interaction_required":
        return EidLoginError("The eID needs you to log in again.")
    code = error if _ERROR_CODE.fullmatch(error) else "unknown error"
    return EidLoginError(f"The eID refused the login ({code}). Log in again.")


class EidRelyingParty:
    """This app's client of the eID named by settings.eid_provider_issuer.

    The discovery document and the provider's keys are fetched once and cached for
    the life of the process; the keys are fetched again when an ID token names a key
    the cache lacks (the provider rotated its keys). Concurrent first fetches may both
    go out; the last one wins, and both are the same document.
    """

    def __init__(self, settings: Settings, http: httpx.Client) -> None:
        self._http = http
        self._issuer = settings.eid_provider_issuer
        self._client_id = settings.eid_client_id
        self._client_secret = settings.eid_portal_secret
        self._min_level = settings.eid_min_acr
        self._national_id_claim = settings.eid_national_id_claim
        self._provider_metadata: dict[str, Any] | None = None
        self._keys: KeySet | None = None

    def start_login(
        self,
        session: Session,
        *,
        purpose: str,
        continue_to: str,
        browser_id: str,
        redirect_uri: str,
    ) -> str:
        """The eID authorize URL to send the browser to; the login is remembered in `session`."""
        if len(purpose) > _MAX_PURPOSE or len(continue_to) > _MAX_CONTINUE_TO:
            raise ValueError("purpose or continue_to is longer than oidc_login holds")
        if not 0 < len(browser_id) <= _MAX_BROWSER_ID:
            raise ValueError("browser_id must be 1 to 64 characters")
        provider = self._provider()
        # 43 letters and digits: 256 bits. The verifier's 64 are within RFC 7636's 43-128.
        login = OidcLoginStore(session).begin(
            state=generate_token(43),
            nonce=generate_token(43),
            code_verifier=generate_token(64),
            browser_id=browser_id,
            purpose=purpose,
            continue_to=continue_to,
        )
        return str(
            add_params_to_uri(
                provider["authorization_endpoint"],
                [
                    ("response_type", "code"),
                    ("client_id", self._client_id),
                    ("redirect_uri", redirect_uri),
                    ("scope", SCOPE),
                    ("state", login.state),
                    ("nonce", login.nonce),
                    ("code_challenge", create_s256_code_challenge(login.code_verifier)),
                    ("code_challenge_method", "S256"),
                    # The provider shows its login at this level (or asks for more).
                    ("acr_values", ACR_URIS[self._min_level]),
                ],
            )
        )

    def finish_login(
        self,
        session: Session,
        *,
        state: str,
        code: str,
        browser_id: str,
        redirect_uri: str,
    ) -> tuple[EidIdentity, str, str]:
        """The verified identity of a login coming back to the callback, with its purpose
        and continue_to; EidLoginError when anything about it is wrong.

        Call it before anything else in `session`'s transaction: the login is spent in a
        transaction of its own on the same database, which must not wait for yours.
        """
        login = self._claim(session, state)
        if login is None:
            raise EidLoginError("This login has expired or was already completed. Log in again.")
        if not hmac.compare_digest(login.browser_id.encode(), browser_id.encode()):
            raise EidLoginError(
                "This login was started in another browser, or your browser did not keep "
                "its cookie. Log in again from this browser."
            )
        tokens = self._exchange(code, login.code_verifier, redirect_uri)
        id_token = tokens["id_token"]
        access_token = tokens.get("access_token")
        claims = self._verified_claims(
            id_token,
            nonce=login.nonce,
            access_token=access_token if isinstance(access_token, str) and access_token else None,
        )
        return self._identity(claims, id_token), login.purpose, login.continue_to

    def end_session_url(self, *, id_token_hint: str, post_logout_redirect_uri: str) -> str | None:
        """Where to send the browser to end its eID session too (RP-initiated logout).

        https://openid.net/specs/openid-connect-rpinitiated-1_0.html. None when the
        provider offers no end_session_endpoint, or cannot be reached: the local
        session ends regardless.
        """
        try:
            endpoint = self._provider().get("end_session_endpoint")
        except EidUnavailable:
            return None
        if not isinstance(endpoint, str) or not endpoint:
            return None
        return str(
            add_params_to_uri(
                endpoint,
                [
                    ("id_token_hint", id_token_hint),
                    ("post_logout_redirect_uri", post_logout_redirect_uri),
                    ("client_id", self._client_id),
                ],
            )
        )

    # The login row

    @staticmethod
    def _claim(session: Session, state: str) -> PendingLogin | None:
        # The claim commits in a transaction of its own, before the eID is asked for
        # anything. A login is then spent even when what follows refuses it (the
        # caller's transaction rolls back on the error). And no lock is held while the
        # eID answers: the development eID writes to this same database, and on SQLite
        # an open write transaction here would make its token endpoint wait for us.
        with Session(session.get_bind()) as own, own.begin():
            return OidcLoginStore(own).claim(state)

    # HTTP to the provider

    def _provider(self) -> dict[str, Any]:
        """The discovery document: https://openid.net/specs/openid-connect-discovery-1_0.html"""
        if self._provider_metadata is None:
            document = self._get_json(f"{self._issuer}/.well-known/openid-configuration")
            # Discovery 4.3: the document's issuer must be the one it was fetched for.
            issuer = document.get("issuer")
            if not isinstance(issuer, str) or issuer.rstrip("/") != self._issuer:
                log.error("The eID's discovery document names issuer %r", issuer)
                raise EidUnavailable("The eID is misconfigured. Try again later.")
            for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(endpoint), str):
                    log.error("The eID's discovery document lacks %s", endpoint)
                    raise EidUnavailable("The eID is misconfigured. Try again later.")
            self._provider_metadata = document
        return self._provider_metadata

    def _key_set(self, *, refresh: bool = False) -> KeySet:
        if self._keys is None or refresh:
            document = self._get_json(self._provider()["jwks_uri"])
            try:
                self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, KeyError, TypeError, ValueError):
                log.exception("The eID's JWKS could not be read")
                raise EidUnavailable("The eID's keys could not be read. Try again later.") from None
        return self._keys

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            log.warning("The eID at %s could not be reached: %s", url, error)
            raise EidUnavailable("The eID could not be reached. Try again in a moment.") from None
        try:
            document = response.json() if response.status_code == 200 else None
        except ValueError:
            document = None
        if not isinstance(document, dict):
            log.warning("The eID answered %s for %s", response.status_code, url)
            raise EidUnavailable("The eID could not be reached. Try again in a moment.")
        return document

    def _exchange(self, code: str, code_verifier: str, redirect_uri: str) -> dict[str, Any]:
        """The token endpoint's answer to the code: https://datatracker.ietf.org/doc/html/rfc6749#section-4.1.3"""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
        }
        headers = {"Accept": "application/json"}
        if self._client_secret is None:
            form["client_id"] = self._client_id  # a public client names itself
        else:
            headers["Authorization"] = _basic_authorization(self._client_id, self._client_secret)
        try:
            response = self._http.post(
                self._provider()["token_endpoint"], data=form, headers=headers
            )
            answer = response.json()
        except httpx.HTTPError as error:
            log.warning("The eID's token endpoint could not be reached: %s", error)
            raise EidUnavailable("The eID could not be reached. Try again in a moment.") from None
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise EidUnavailable("The eID gave an answer that could not be read. Log in again.")
        if response.status_code != 200:
            log.warning(
                "The eID refused the code: %s %s",
                answer.get("error"),
                answer.get("error_description"),
            )
            if answer.get("error") == "invalid_grant":
                raise EidLoginError(
                    "The eID did not accept this login (it expired or was already used). "
                    "Log in again."
                )
            raise EidUnavailable("The eID refused this service's request. Try again later.")
        if not isinstance(answer.get("id_token"), str):
            raise EidUnavailable("The eID's answer had no ID token. Log in again.")
        return answer

    # The ID token

    def _verified_claims(
        self, id_token: str, *, nonce: str, access_token: str | None
    ) -> dict[str, Any]:
        """The ID token's claims once signature, iss, aud, exp, iat, nonce, azp and
        at_hash hold (https://openid.net/specs/openid-connect-core-1_0.html#IDTokenValidation)."""
        try:
            token = self._decode(id_token)
        except BadSignatureError:
            raise EidLoginError("The eID's ID token has an invalid signature.") from None
        except InvalidKeyIdError:
            raise EidLoginError(
                "The eID's ID token is signed with a key the eID does not publish."
            ) from None
        except MALFORMED_JWT:
            raise EidLoginError("The eID's ID token could not be read or verified.") from None
        issuer = self._provider()["issuer"]
        claims = CodeIDToken(
            token.claims,
            token.header,
            options={
                "iss": {"essential": True, "value": issuer},
                "sub": {"essential": True},
                "aud": {"essential": True, "value": self._client_id},
                "exp": {"essential": True},
                "iat": {"essential": True},
                "nonce": {"essential": True, "value": nonce},
            },
            params={"nonce": nonce, "client_id": self._client_id, "access_token": access_token},
        )
        try:
            claims.validate(leeway=LEEWAY_SECONDS)
        except ExpiredTokenError:
            raise EidLoginError("The eID's ID token has expired. Log in again.") from None
        except ClaimError as error:
            raise EidLoginError(
                f"The eID's ID token was refused: its claim '{error.claim}' is missing or wrong."
            ) from None
        return dict(claims)

    def _decode(self, id_token: str) -> jwt.Token:
        try:
            return jwt.decode(id_token, self._key_set(), algorithms=ID_TOKEN_ALGORITHMS)
        except InvalidKeyIdError:
            # A key the cache lacks: the provider may have rotated its keys. Once.
            return jwt.decode(id_token, self._key_set(refresh=True), algorithms=ID_TOKEN_ALGORITHMS)

    def _identity(self, claims: dict[str, Any], id_token: str) -> EidIdentity:
        acr = claims.get("acr")
        level = _LEVEL_OF_ACR.get(acr) if isinstance(acr, str) else None
        minimum = self._min_level
        if level is None:
            raise InsufficientAssurance(
                "The eID did not say at which level of assurance you logged in. Health data "
                f"needs at least level '{minimum}'."
            )
        if EIDAS_LEVELS.index(level) < EIDAS_LEVELS.index(minimum):
            raise InsufficientAssurance(
                f"You logged in at level of assurance '{level}', but health data needs at "
                f"least '{minimum}'. Log in again at level '{minimum}' or higher."
            )
        national_id = claims.get(self._national_id_claim)
        if not isinstance(national_id, str) or not 0 < len(national_id) <= _MAX_NATIONAL_ID:
            raise EidLoginError(
                "The eID did not tell us your national ID number, so your record cannot be found."
            )
        name = claims.get("name")
        return EidIdentity(
            national_id=national_id,
            name=name[:_MAX_NAME] if isinstance(name, str) else "",
            birth_date=_iso_date(claims.get("birthdate")),
            acr=level,
            id_token=id_token,
        )


def _iso_date(value: object) -> str | None:
    """`birthdate` when it is a full ISO date (the claim may also be a year alone)."""
    if not isinstance(value, str):
        return None
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        return None


def _basic_authorization(client_id: str, client_secret: str) -> str:
    """client_secret_basic: both parts form-urlencoded first (RFC 6749 section 2.3.1)."""
    credentials = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
    return "Basic " + base64.b64encode(credentials.encode()).decode()
