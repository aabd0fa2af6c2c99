"""Login, sessions, CSRF tokens and the audit log of the web console.

- The password comes from ``REVSYNC_WEB_PASSWORD`` (environment or the secrets file)
  and is kept only as a salted scrypt hash in memory; ``REVSYNC_WEB_PASSWORD_HASH``
  (``scrypt$<salt hex>$<hash hex>``, made by ``hash_password``) avoids keeping the
  clear password anywhere at all. Comparison is constant-time.
- Sessions are signed cookies (Starlette's ``SessionMiddleware``, itsdangerous) that
  expire after ``max_age``; the signing key is random per process, so a restart ends
  every session.
- Every POST carries the session's CSRF token (a hidden field), checked in constant time.
- Every action is appended to a JSON-lines audit file: who, when, from where, what.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PASSWORD_ENV = "REVSYNC_WEB_PASSWORD"  # noqa: S105 (a variable name)
HASH_ENV = "REVSYNC_WEB_PASSWORD_HASH"
USER_ENV = "REVSYNC_WEB_USER"
_N, _R, _P = 2**14, 8, 1  # scrypt cost (RFC 7914's interactive-login figures)


class AuthConfigError(Exception):
    """No password configured, or a malformed hash."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$<salt>$<hash>`` for ``password`` (hashlib's scrypt: no extra dependency)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        kind, salt_hex, digest_hex = stored.split("$")
        salt, want = bytes.fromhex(salt_hex), bytes.fromhex(digest_hex)
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=len(want))
    return hmac.compare_digest(got, want)


@dataclass(frozen=True)
class Credentials:
    user: str
    password_hash: str

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password_hash='***')"

    def check(self, user: str, password: str) -> bool:
        ok_pw = verify_password(password, self.password_hash)
        return hmac.compare_digest(user.encode(), self.user.encode()) and ok_pw


def load_credentials(secrets_file: dict[str, str] | None = None) -> Credentials:
    """From the environment, else the secrets file; the clear password is hashed at once."""
    src: dict[str, str] = {**(secrets_file or {}), **{k: v for k, v in os.environ.items()
                                                       if k in (PASSWORD_ENV, HASH_ENV, USER_ENV)}}
    user = src.get(USER_ENV) or "admin"
    if src.get(HASH_ENV):
        if not src[HASH_ENV].startswith("scrypt$") or src[HASH_ENV].count("$") != 2:
            raise AuthConfigError(f"{HASH_ENV} is not a scrypt$SALT$HASH value (make one with "
                                  "`revsync web --hash-password`)")
        return Credentials(user, src[HASH_ENV])
    if src.get(PASSWORD_ENV):
        return Credentials(user, hash_password(src[PASSWORD_ENV]))
    raise AuthConfigError(f"set {PASSWORD_ENV} (or {HASH_ENV}) in the environment or the secrets file "
                          "to open the console")


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def csrf_ok(session: dict[str, Any], sent: str | None) -> bool:
    want = session.get("csrf")
    return bool(want and sent) and hmac.compare_digest(str(want), str(sent))


class AuditLog:
    """Append-only JSON lines: ``{"at", "user", "client", "action", ...details}``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def write(self, user: str | None, client: str | None, action: str, **details: Any) -> dict[str, Any]:
        entry = {"at": datetime.now(UTC).isoformat(), "user": user, "client": client, "action": action, **details}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry, default=str, sort_keys=True) + "\n")
        return entry

    def tail(self, n: int = 100) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()[-n:]
        return [json.loads(x) for x in reversed(lines) if x.strip()]
