"""Who may do what in the console: settings, the sign-in token, sessions, CSRF, the audit log.

- Reading pages needs nothing (unless ``login_to_read``): the console binds to 127.0.0.1.
- Every POST that changes something needs a session (signed in with the token) and the CSRF
  token of that session in the form; a POST from another origin is refused outright.
- ``read_only`` refuses every action and offers no sign-in.
- Sessions are stateless: ``<id>.<issued>.<hmac>`` under a key drawn at start, so a restart
  signs everyone out and nothing is stored. The CSRF token is an HMAC of the session id.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from dataclasses import dataclass

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

audit = logging.getLogger("python_worker.dashboard.audit")

SESSION_COOKIE = "kyu_session"
LOGIN_COOKIE = "kyu_login"  # double-submit token of the sign-in form (no session yet)


class ConsoleSettings(BaseSettings):
    """``KYU_DASHBOARD_*`` environment variables; CLI flags override them."""

    model_config = SettingsConfigDict(env_prefix="KYU_DASHBOARD_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8400, ge=1, le=65535)
    token: SecretStr | None = None  # none: one is drawn at start and printed
    read_only: bool = False
    hide_payloads: bool = False
    login_to_read: bool = False
    refresh_seconds: float = Field(5.0, gt=0)
    session_hours: float = Field(12.0, gt=0)
    secure_cookies: bool = False  # set behind HTTPS


@dataclass(frozen=True)
class Session:
    id: str

    @property
    def label(self) -> str:  # what the audit log names (never the cookie itself)
        return f"session:{self.id[:8]}"


class Guard:
    def __init__(self, settings: ConsoleSettings) -> None:
        self.settings = settings
        self.generated_token = settings.token is None and not settings.read_only
        token = (settings.token.get_secret_value() if settings.token
                 else secrets.token_urlsafe(18))
        if not token.strip():
            raise ValueError("KYU_DASHBOARD_TOKEN is empty: set a token, or unset it to get one")
        self._token = token
        self._key = secrets.token_bytes(32)

    @property
    def token(self) -> str:
        return self._token

    def _sign(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()

    def check_token(self, given: str) -> bool:
        return hmac.compare_digest(given.encode(), self._token.encode())

    def new_session(self) -> str:
        sid, issued = secrets.token_hex(16), str(int(time.time()))
        return f"{sid}.{issued}.{self._sign(f'session:{sid}.{issued}')}"

    def session(self, cookie: str | None) -> Session | None:
        if not cookie or self.settings.read_only:
            return None
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        sid, issued, sig = parts
        if not hmac.compare_digest(sig, self._sign(f"session:{sid}.{issued}")):
            return None
        if time.time() - int(issued) > self.settings.session_hours * 3600:
            return None
        return Session(sid)

    def csrf_token(self, session: Session | None) -> str:
        return self._sign(f"csrf:{session.id}") if session else ""

    def check_csrf(self, session: Session, given: str) -> bool:
        return bool(given) and hmac.compare_digest(given, self.csrf_token(session))
