"""Who may talk to the server: the shared token, WebSocket origins, session ids, and keeping
secrets out of the logs.

The token travels in an `Authorization: Bearer <token>` header (HTTP and WebSocket) or, for
browsers, which cannot set headers on a WebSocket, in the first WebSocket message
`{"type": "auth", "token": "..."}`. Never in a URL: URLs end up in access logs.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
_URL_TOKEN = re.compile(r"((?:^|[?&;\s\"'])token=)[^&\s\"']*", re.IGNORECASE)
REDACTED = "[redacted]"


def new_session_id() -> str:
    """128 random bits, URL-safe (22 characters): ids are unguessable capabilities."""
    return secrets.token_urlsafe(16)


def token_matches(given: object, expected: str) -> bool:
    """Constant-time comparison; hashing first hides the expected token's length too."""
    if not isinstance(given, str) or not given:
        return False
    digest = hashlib.sha256
    return hmac.compare_digest(digest(given.encode()).digest(), digest(expected.encode()).digest())


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, if there is one."""
    scheme, _, token = (headers.get("authorization") or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def origin_allowed(origin: str | None, host: str | None, allowed: Iterable[str]) -> bool:
    """Whether a WebSocket from a page at `origin` may connect to this server at `host`.

    `allowed` holds exact origins ("https://app.example.com") and the keywords "self" (the
    server's own origin: the Host header, as a browser on our page sends it), "localhost"
    (any port on localhost, 127.0.0.1 or [::1]) and "*" (any origin). Clients that send no
    Origin are not browsers, so no other page can be driving them: they pass.
    """
    if origin is None:
        return True
    allowed = set(allowed)
    origin = origin.strip().rstrip("/").lower()
    if "*" in allowed or origin in {a.rstrip("/").lower() for a in allowed}:
        return True
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False  # "null" (a sandboxed frame, a file:// page) and other oddities
    if "self" in allowed and host is not None and parts.netloc == host.strip().lower():
        return True
    return "localhost" in allowed and (parts.hostname or "") in LOCAL_HOSTS


class RedactSecrets(logging.Filter):
    """Rewrites a record's message with every secret, and any `token=` URL parameter, masked."""

    def __init__(self, secrets_to_hide: Iterable[str]):
        super().__init__()
        self.secrets = [s for s in secrets_to_hide if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return _URL_TOKEN.sub(rf"\1{REDACTED}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def redact_logs(secrets_to_hide: Iterable[str]) -> RedactSecrets:
    """Install a `RedactSecrets` on every handler that exists now (the root's, uvicorn's,
    Hydra's): whatever logger a record comes from, it is written by one of those."""
    redactor = RedactSecrets(secrets_to_hide)
    loggers = [
        logging.getLogger(),
        *(logging.getLogger(name) for name in logging.root.manager.loggerDict),
    ]
    for handler in {h for logger in loggers for h in getattr(logger, "handlers", [])}:
        handler.addFilter(redactor)
    return redactor
