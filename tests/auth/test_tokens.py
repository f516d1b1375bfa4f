"""Access tokens: what they carry, and every way a forged or stale one is refused."""

from __future__ import annotations

import base64
import json
import time

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from health.auth.keys import SigningKey
from health.auth.tokens import (
    CLOCK_LEEWAY_SECONDS,
    VERIFIED_TOKENS_KEPT,
    AccessTokens,
    InvalidToken,
    TokenContext,
)
from health.settings import Settings

CONTEXT = TokenContext(
    client_id="app-1",
    actor_kind="citizen",
    scope="patient/*.read launch/patient",
    grant_id="grant-1",
    patient_id="p-1",
    fhir_user="Patient/p-1",
)


def _signing_key() -> SigningKey:
    key = ECKey.generate_key("P-256")
    return SigningKey(key=key, algorithm="ES256", kid=key.thumbprint())


@pytest.fixture
def tokens() -> AccessTokens:
    return AccessTokens(Settings(base_url="https://health.example"), _signing_key())


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _parts(token: str) -> tuple[dict[str, object], dict[str, object]]:
    header, claims, _ = token.split(".")
    pad = lambda part: part + "=" * (-len(part) % 4)  # noqa: E731
    return (
        json.loads(base64.urlsafe_b64decode(pad(header))),
        json.loads(base64.urlsafe_b64decode(pad(claims))),
    )


def test_a_token_carries_issuer_audience_expiry_and_launch_context(tokens: AccessTokens) -> None:
    issued = tokens.issue(CONTEXT)
    header, claims = _parts(issued.token)

    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert claims["iss"] == "https://health.example/auth"
    assert claims["aud"] == "https://health.example/fhir"
    assert claims["exp"] - claims["iat"] == issued.expires_in == 300
    assert claims["patient"] == "p-1"
    assert "national_id" not in claims
    assert tokens.verify(issued.token) == CONTEXT


def test_a_token_signed_by_another_key_is_refused(tokens: AccessTokens) -> None:
    stranger = AccessTokens(Settings(base_url="https://health.example"), _signing_key())
    with pytest.raises(InvalidToken, match="signature"):
        tokens.verify(stranger.issue(CONTEXT).token)


def test_a_tampered_token_is_refused(tokens: AccessTokens) -> None:
    token = tokens.issue(CONTEXT).token
    header, _, signature = token.split(".")
    _, decoded = _parts(token)
    decoded["patient"] = "someone-else"
    with pytest.raises(InvalidToken):
        tokens.verify(f"{header}.{_b64(decoded)}.{signature}")


def test_a_tampered_copy_of_a_token_verified_before_is_refused(tokens: AccessTokens) -> None:
    token = tokens.issue(CONTEXT).token
    assert tokens.verify(token) == CONTEXT
    header, _, signature = token.split(".")
    _, decoded = _parts(token)
    decoded["patient"] = "someone-else"
    with pytest.raises(InvalidToken, match="signature"):
        tokens.verify(f"{header}.{_b64(decoded)}.{signature}")
    assert tokens.verify(token) == CONTEXT


def test_a_token_verified_before_is_refused_once_it_expires(tokens: AccessTokens) -> None:
    issued_at = int(time.time())
    issued = tokens.issue(CONTEXT, now=issued_at)
    assert tokens.verify(issued.token, now=issued_at) == CONTEXT
    after_expiry = issued_at + issued.expires_in + CLOCK_LEEWAY_SECONDS + 1
    with pytest.raises(InvalidToken, match="exp"):
        tokens.verify(issued.token, now=after_expiry)


def test_a_token_verified_before_is_refused_before_it_was_issued(tokens: AccessTokens) -> None:
    # Every claim is checked against the clock of each use, not of the first.
    issued_at = int(time.time())
    issued = tokens.issue(CONTEXT, now=issued_at)
    assert tokens.verify(issued.token, now=issued_at) == CONTEXT
    with pytest.raises(InvalidToken, match="issued in the future"):
        tokens.verify(issued.token, now=issued_at - 3600)


def test_a_token_verified_before_is_still_verified_when_many_others_came_after(
    tokens: AccessTokens,
) -> None:
    first = tokens.issue(CONTEXT).token
    tokens.verify(first)
    for _ in range(VERIFIED_TOKENS_KEPT + 1):
        tokens.verify(tokens.issue(CONTEXT).token)
    assert tokens.verify(first) == CONTEXT


def test_an_unsigned_token_is_refused(tokens: AccessTokens) -> None:
    _, claims = _parts(tokens.issue(CONTEXT).token)
    unsigned = f"{_b64({'alg': 'none', 'typ': 'at+jwt'})}.{_b64(claims)}."
    with pytest.raises(InvalidToken):
        tokens.verify(unsigned)


def test_a_token_with_another_algorithm_is_refused(tokens: AccessTokens) -> None:
    # The verifier accepts only its own key's algorithm: an RSA token, even a validly
    # signed one, cannot be slipped in (algorithm confusion).
    rsa = RSAKey.generate_key(2048)
    _, claims = _parts(tokens.issue(CONTEXT).token)
    forged = jwt.encode({"alg": "RS256", "typ": "at+jwt"}, claims, rsa, algorithms=["RS256"])
    with pytest.raises(InvalidToken):
        tokens.verify(forged)


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [("https://other.example", "iss"), ("https://health.example/other", "iss")],
)
def test_a_token_of_another_issuer_is_refused(base_url: str, reason: str) -> None:
    key = _signing_key()
    ours = AccessTokens(Settings(base_url="https://health.example"), key)
    theirs = AccessTokens(Settings(base_url=base_url), key)
    with pytest.raises(InvalidToken, match=reason):
        ours.verify(theirs.issue(CONTEXT).token)


def test_a_token_for_another_audience_is_refused(tokens: AccessTokens) -> None:
    key = _signing_key()
    ours = AccessTokens(Settings(base_url="https://health.example"), key)
    other = AccessTokens(Settings(base_url="https://health.example"), key)
    other.audience = "https://elsewhere.example/fhir"
    with pytest.raises(InvalidToken, match="aud"):
        ours.verify(other.issue(CONTEXT).token)


def test_an_expired_token_is_refused(tokens: AccessTokens) -> None:
    issued = tokens.issue(CONTEXT, now=int(time.time()) - 3600)
    with pytest.raises(InvalidToken, match="exp"):
        tokens.verify(issued.token)


def test_an_id_token_cannot_pass_for_an_access_token(tokens: AccessTokens) -> None:
    key = _signing_key()
    ours = AccessTokens(Settings(base_url="https://health.example"), key)
    _, claims = _parts(ours.issue(CONTEXT).token)
    id_token = jwt.encode({"alg": "ES256", "typ": "JWT"}, claims, key.key, algorithms=["ES256"])
    with pytest.raises(InvalidToken, match="typ"):
        ours.verify(id_token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "ey.ey.ey"])
def test_garbage_is_refused(tokens: AccessTokens, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        tokens.verify(garbage)
