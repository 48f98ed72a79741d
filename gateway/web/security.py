"""Who may use the dashboard, and which requests may change something.

- Access: under Open OnDemand the per-user server is reachable by its user alone (the
  portal authenticates); `gw web` serves on localhost, where anyone on the node could
  connect, so it prints a URL with a random token and serves nothing without it. The
  first request carries it in the URL; it is then kept in an HttpOnly, SameSite=Strict
  cookie scoped to the app's base path, and the token is taken out of the address bar.
- Changes: every POST carries a token derived from the home's secret
  (``layout.web_secret``, 0600) that no other site can read, and a POST whose ``Origin``
  (or ``Referer``) names another host is refused.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

TOKEN_COOKIE = "gw_token"
CSRF_FIELD = "csrf"
CSRF_HEADER = "X-CSRF-Token"


def load_secret(path: Path) -> bytes:
    """The home's dashboard secret, made (0600) on first use. Two servers making it at
    once agree: it is written whole under a temp name and linked into place only if no
    other is there (a link never replaces a file)."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.partial")
    try:
        descriptor = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(secrets.token_bytes(32))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes()


def csrf_token(secret: bytes) -> str:
    """The token every state-changing form of this home carries."""
    return hmac.new(secret, b"gw-dashboard-csrf", hashlib.sha256).hexdigest()


def same_token(given: str | None, expected: str) -> bool:
    """Whether ``given`` is ``expected``, compared in constant time."""
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def foreign_origin(origin: str | None, referer: str | None, host: str) -> bool:
    """Whether a request's Origin (else Referer) names a host other than ``host``."""
    source = origin if origin and origin != "null" else referer
    if origin == "null":
        return True
    if not source:
        return False
    return urlsplit(source).netloc.lower() != host.lower()


def new_access_token() -> str:
    """A fresh random token for `gw web`."""
    return secrets.token_urlsafe(32)

