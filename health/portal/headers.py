"""Security headers on every response, and a strict Content-Security-Policy on pages.

A pure ASGI middleware (it sees each response's headers before they are sent) so that
every router gets them without remembering to: what one forgotten dependency would
leak is the point. Headers a route sets itself are kept (the SMART approval page,
attachments with their own sandboxing policy).
https://owasp.org/www-project-secure-headers/
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline script or style anywhere; everything from this origin. form-action is set
# for the portal only: the SMART approval page must send the browser on to the app.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=(), interest-cohort=()"
)
PORTAL_PREFIX = "/portal"


def portal_form_action(eid_issuer: str | None) -> str:
    """Where portal forms may go: here, and the eID the login and logout lead to."""
    origins = ["'self'"]
    if eid_issuer:
        parts = urlsplit(eid_issuer)
        origins.append(f"{parts.scheme}://{parts.netloc}")
    return "form-action " + " ".join(origins)


class SecurityHeaders:
    """Adds nosniff and Referrer-Policy to every response, and to HTML pages the CSP,
    frame refusal and Permissions-Policy."""

    def __init__(self, app: ASGIApp, eid_issuer: str | None = None) -> None:
        self.app = app
        self.portal_policy = f"{PAGE_POLICY}; {portal_form_action(eid_issuer)}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        in_portal = str(scope.get("path", "")).startswith(PORTAL_PREFIX)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if headers.get("content-type", "").startswith("text/html"):
                    policy = self.portal_policy if in_portal else PAGE_POLICY
                    headers.setdefault("Content-Security-Policy", policy)
                    headers.setdefault("X-Frame-Options", "DENY")
                    headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
            await send(message)

        await self.app(scope, receive, send_with_headers)
