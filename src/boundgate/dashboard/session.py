"""Dashboard sessions: a signed, HttpOnly, SameSite=Strict cookie, and CSRF tokens.

Who may look: with API keys in the store, only a holder of an *admin* key (typed once into
the login form; the cookie then carries the key's id, never the key). A revoked key ends its
sessions at the next page; "Sign out" ends the session itself, in every process sharing the
store (its id is kept as signed out until no process could accept its cookie), so a copy of
the cookie taken before is refused too. In open local mode (no keys at all) everyone on the loopback
interface is the local admin, as on the API.

CSRF: every state-changing form carries a token derived from the session's random id with
the dashboard secret (HMAC-SHA256); a POST without the matching token, or from another
origin, is refused. The cookie is SameSite=Strict as well, so a cross-site form post does
not even carry it.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

from ..store import Store

COOKIE = "boundgate_session"
SECRET_FILE = "dashboard-secret"


def load_or_create_secret(data_dir: Path) -> bytes:
    """The dashboard's signing secret, kept (0600) in the data directory across restarts."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_bytes()
        if len(secret) >= 32:
            return secret
        raise ValueError(f"{path} is too short to be a dashboard secret; delete it") from None
    secret = secrets.token_bytes(32)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret)
    return secret


# The longest a session cookie can be valid, whatever a process's ``dashboard.session_hours``
# (its upper bound): a signed-out session is refused this long after its login, since another
# process sharing the store may read its cookie with a longer setting (a re-check)
MAX_SESSION_S = 30 * 24 * 3600.0


@dataclass(frozen=True)
class Session:
    sid: str  # random per login; the CSRF token is derived from it
    tenant: str
    key_id: str | None  # None in open local mode
    admin: bool
    issued_at: float = 0.0  # when the cookie was signed (epoch s); 0: not yet


class Sessions:
    def __init__(self, secret: bytes, max_age_s: float) -> None:
        self._secret = secret
        self._serializer = URLSafeTimedSerializer(secret, salt="boundgate-dashboard-session")
        self.max_age_s = max_age_s

    async def read(self, request: Request, store: Store) -> Session | None:
        """The request's valid session, or None (absent, forged, expired, key revoked)."""
        raw = request.cookies.get(COOKIE)
        if not raw:
            return None
        try:
            data, signed = self._serializer.loads(
                raw, max_age=int(self.max_age_s), return_timestamp=True
            )
        except BadSignature:
            return None
        if not isinstance(data, dict):
            return None
        session = Session(
            sid=str(data.get("sid", "")),
            tenant=str(data.get("tenant", "")),
            key_id=data.get("key") if isinstance(data.get("key"), str) else None,
            admin=bool(data.get("admin")),
            issued_at=signed.timestamp(),
        )
        if not session.sid or await store.session_ended(session.sid):
            return None
        keyed = await store.has_keys()
        if session.key_id is None:
            # an open-mode session is worthless once keys exist
            return None if keyed else session
        key = await store.get_key(session.key_id)  # one row, not every key per page
        if key is None or key.revoked or not key.admin:
            return None
        return session

    def issue(self, response: Response, request: Request, session: Session) -> None:
        value = self._serializer.dumps(
            {"sid": session.sid, "tenant": session.tenant, "key": session.key_id,
             "admin": session.admin}
        )  # fmt: skip
        response.set_cookie(
            COOKIE,
            value,
            max_age=int(self.max_age_s),
            path="/dashboard",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )

    async def end(self, response: Response, session: Session, store: Store) -> None:
        """Sign ``session`` out: its id is refused from now on by every process sharing
        ``store`` (until no process could still accept its cookie: its signing time plus the
        longest ``session_hours`` allowed), and the browser's cookie is cleared."""
        now = time.time()
        until = (session.issued_at or now) + MAX_SESSION_S
        await store.end_session(session.sid, until=until, now=now)
        self.clear(response)

    @staticmethod
    def clear(response: Response) -> None:
        response.delete_cookie(COOKIE, path="/dashboard", httponly=True, samesite="strict")

    @staticmethod
    def new(tenant: str, key_id: str | None, admin: bool) -> Session:
        return Session(sid=secrets.token_urlsafe(18), tenant=tenant, key_id=key_id, admin=admin)

    def csrf_token(self, session: Session) -> str:
        mac = hmac.new(self._secret, b"csrf:" + session.sid.encode(), hashlib.sha256)
        return mac.hexdigest()

    def csrf_ok(self, request: Request, session: Session, token: str | None) -> bool:
        """The form's token matches this session, and the post comes from our own origin."""
        origin = request.headers.get("origin") or request.headers.get("referer")
        if origin == "null":
            return False  # an opaque origin (a sandboxed frame, a data: page) is another's
        if origin:
            host = urlsplit(origin).netloc
            if host != request.headers.get("host", request.url.netloc):
                return False
        return bool(token) and hmac.compare_digest(str(token), self.csrf_token(session))
