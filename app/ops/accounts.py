"""Operator accounts: users and roles, password hashes, server-side sessions, personal API tokens.

No Flask here (the console, the API and the CLI share it; app/ops/auth.py is
the request side). Passwords are hashed with argon2id (argon2-cffi, its
default parameters, RFC 9106). A login session is a random 32-byte id handed to
the browser (inside Flask's signed cookie) and stored here only as its SHA-256,
so deleting the row (logout, password change, user removal) ends it at once.
A personal API token is ``pnp_<prefix>_<secret>``, shown once, stored as its
SHA-256 (it carries 256 random bits, so a plain hash suffices), revocable, with
the time it was last used.

Roles, each including the ones before: ``viewer`` (reads), ``operator``
(device actions, inventory), ``admin`` (users, audit, settings, images).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.config import Config
from app.ops.errors import ActionError, Conflict, NotFound
from app.storage.db import utcnow
from app.storage.models import ApiToken, OperatorSession, OperatorUser

ROLES = ("viewer", "operator", "admin")
#: a user name: 1-64 letters, digits or . _ @ - starting with a letter or digit (the API schema uses it too)
USER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
_NAME = re.compile(USER_NAME)
MIN_PASSWORD = 8
#: how often a session's last_seen / a token's last_used_at is written (seconds)
TOUCH_EVERY = 30
_hasher = PasswordHasher()
# A hash of nothing, verified when a user does not exist, so that both answers take as long.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: user name, role, how they authenticated (session, token,
    env-token, cli), the session id hash or token id."""

    name: str
    role: str
    via: str
    user_id: int | None = None
    handle: str | int | None = None

    def can(self, role: str) -> bool:
        """True when this principal's role includes ``role`` (viewer < operator < admin)."""
        return ROLES.index(self.role) >= ROLES.index(role)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_password(password: str) -> str:
    """The argon2id hash of ``password``. Raises ActionError when it is shorter than 8 characters."""
    if len(password) < MIN_PASSWORD:
        raise ActionError(f"the password must have at least {MIN_PASSWORD} characters")
    return _hasher.hash(password)


def check_role(role: str) -> str:
    """``role`` if it is one of ROLES, else ActionError."""
    if role not in ROLES:
        raise ActionError(f"unknown role {role!r} (one of {', '.join(ROLES)})")
    return role


def _user(session: Session, name: str) -> OperatorUser | None:
    return session.scalars(select(OperatorUser).where(OperatorUser.name == name)).one_or_none()


def user_dict(user: OperatorUser) -> dict:
    """The public view of a user (never the hash)."""
    return {"name": user.name, "role": user.role, "created_at": user.created_at,
            "password_changed_at": user.password_changed_at}


def add_user(sessions: sessionmaker[Session], name: str, role: str, password: str) -> dict:
    """Create a user. Raises ActionError (bad name, role or password), Conflict (name taken)."""
    if not _NAME.match(name or ""):
        raise ActionError("a user name is 1-64 letters, digits or . _ @ - (starting with a letter or digit)")
    check_role(role)
    hashed = hash_password(password)
    now = utcnow()
    user = OperatorUser(name=name, role=role, password_hash=hashed, created_at=now, password_changed_at=now)
    try:
        with sessions.begin() as session:
            session.add(user)
    except IntegrityError:
        raise Conflict(f"user {name} exists already") from None
    return user_dict(user)


def has_users(sessions: sessionmaker[Session]) -> bool:
    """True when at least one user exists."""
    with sessions() as session:
        return session.scalars(select(OperatorUser.id).limit(1)).first() is not None


def list_users(sessions: sessionmaker[Session]) -> list[dict]:
    """Every user, by name, with the number of open sessions and of live tokens."""
    with sessions() as session:
        users = session.scalars(select(OperatorUser).order_by(OperatorUser.name)).all()
        owners = session.scalars(select(OperatorSession.user_id)).all()
        live = session.scalars(select(ApiToken.user_id).where(ApiToken.revoked_at.is_(None))).all()
    return [{**user_dict(u), "sessions": owners.count(u.id), "tokens": live.count(u.id)} for u in users]


def remove_user(sessions: sessionmaker[Session], name: str) -> None:
    """Delete a user with their sessions and tokens (ended at once). Raises NotFound, and
    ActionError when it is the last admin."""
    with sessions.begin() as session:
        user = _user(session, name)
        if user is None:
            raise NotFound(f"no user {name}")
        if user.role == "admin" and _admins(session) <= 1:
            raise Conflict(f"{name} is the last admin: add another admin first")
        session.execute(delete(OperatorSession).where(OperatorSession.user_id == user.id))
        session.execute(delete(ApiToken).where(ApiToken.user_id == user.id))
        session.delete(user)


def _admins(session: Session) -> int:
    return len(session.scalars(select(OperatorUser.id).where(OperatorUser.role == "admin")).all())


def set_password(sessions: sessionmaker[Session], name: str, password: str, keep: str | None = None) -> None:
    """Change a password; ends every session of the user except ``keep`` (a session id hash).
    Raises NotFound, ActionError (too short)."""
    hashed = hash_password(password)
    with sessions.begin() as session:
        user = _user(session, name)
        if user is None:
            raise NotFound(f"no user {name}")
        user.password_hash = hashed
        user.password_changed_at = utcnow()
        session.execute(delete(OperatorSession).where(OperatorSession.user_id == user.id,
                                                      OperatorSession.id_hash != (keep or "")))


def set_role(sessions: sessionmaker[Session], name: str, role: str) -> None:
    """Change a user's role (takes effect at their next request). Raises NotFound, ActionError."""
    check_role(role)
    with sessions.begin() as session:
        user = _user(session, name)
        if user is None:
            raise NotFound(f"no user {name}")
        if user.role == "admin" and role != "admin" and _admins(session) <= 1:
            raise Conflict(f"{name} is the last admin: add another admin first")
        user.role = role


def ensure_env_admin(sessions: sessionmaker[Session], config: Config) -> None:
    """Create the first admin ``ADMIN_USER`` with ``ADMIN_PASSWORD`` (environment) when no
    user of that name exists. Once it exists its password is the database's: change it
    with ``run.py users passwd`` (the environment password no longer applies)."""
    if not config.admin_password:
        return
    with sessions() as session:
        if _user(session, config.admin_user) is not None:
            return
    now = utcnow()
    try:
        with sessions.begin() as session:
            session.add(OperatorUser(name=config.admin_user, role="admin",
                                     password_hash=_hasher.hash(config.admin_password),
                                     created_at=now, password_changed_at=now))
    except IntegrityError:
        pass  # another worker created it at the same moment


def authenticate(sessions: sessionmaker[Session], config: Config, name: str, password: str) -> Principal | None:
    """The user's Principal when ``password`` is right, else None (same work either way)."""
    ensure_env_admin(sessions, config)
    with sessions() as session:
        user = _user(session, name)
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    if user is None:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        with sessions.begin() as session:
            session.execute(update(OperatorUser).where(OperatorUser.id == user.id)
                            .values(password_hash=_hasher.hash(password)))
    return Principal(user.name, user.role, "session", user.id)


# --- sessions -----------------------------------------------------------------------------------


def open_session(sessions: sessionmaker[Session], principal: Principal, address: str | None,
                 user_agent: str | None) -> str:
    """Store a new login session; returns its secret id (for the cookie only)."""
    sid = secrets.token_urlsafe(32)
    now = utcnow()
    with sessions.begin() as session:
        session.add(OperatorSession(id_hash=_sha256(sid), user_id=principal.user_id, created_at=now,
                                    last_seen=now, address=(address or "")[:45] or None,
                                    user_agent=(user_agent or "")[:255] or None))
    return sid


def load_session(sessions: sessionmaker[Session], config: Config, sid: str,
                 now: datetime | None = None) -> Principal | None:
    """The Principal of a live session id, else None; an idle (SESSION_IDLE_TIMEOUT) or
    too old (SESSION_MAX_AGE) session is deleted. Writes last_seen at most every 30 s."""
    now = now or utcnow()
    digest = _sha256(sid)
    with sessions() as session:
        found = session.execute(select(OperatorSession, OperatorUser)
                                .join(OperatorUser, OperatorUser.id == OperatorSession.user_id)
                                .where(OperatorSession.id_hash == digest)).one_or_none()
    if found is None:
        return None
    row, user = found
    if (now - row.last_seen > timedelta(seconds=config.session_idle_timeout)
            or now - row.created_at > timedelta(seconds=config.session_max_age)):
        close_session(sessions, sid)
        return None
    if (now - row.last_seen).total_seconds() >= TOUCH_EVERY:
        with sessions.begin() as session:
            session.execute(update(OperatorSession).where(OperatorSession.id_hash == digest)
                            .values(last_seen=now))
    return Principal(user.name, user.role, "session", user.id, digest)


def close_session(sessions: sessionmaker[Session], sid: str) -> None:
    """End a session (logout)."""
    with sessions.begin() as session:
        session.execute(delete(OperatorSession).where(OperatorSession.id_hash == _sha256(sid)))


def end_sessions(sessions: sessionmaker[Session], name: str) -> int:
    """End every session of a user; returns how many. Raises NotFound."""
    with sessions.begin() as session:
        user = _user(session, name)
        if user is None:
            raise NotFound(f"no user {name}")
        return session.execute(delete(OperatorSession).where(OperatorSession.user_id == user.id)).rowcount


# --- API tokens ---------------------------------------------------------------------------------


#: a token name with something besides white space, in the same spelling for Python and JSON Schema
#: (their ``\s`` differ): the characters ``str.strip()`` removes, spelled out
_SPACE = r"\t\n\v\f\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
TOKEN_NAME = rf"^[{_SPACE}]*[^{_SPACE}]"


def create_token(sessions: sessionmaker[Session], user_name: str, token_name: str) -> tuple[str, dict]:
    """A new personal token of ``user_name``: ``(secret, info)``; the secret is shown once.
    Raises NotFound, ActionError (empty name)."""
    token_name = (token_name or "").strip()[:64]
    if not token_name:
        raise ActionError("give the token a name (what it is for)")
    prefix = secrets.token_hex(4)
    secret = f"pnp_{prefix}_{secrets.token_urlsafe(32)}"
    with sessions.begin() as session:
        user = _user(session, user_name)
        if user is None:
            raise NotFound(f"no user {user_name}")
        token = ApiToken(user_id=user.id, name=token_name, prefix=prefix, token_hash=_sha256(secret),
                         created_at=utcnow())
        session.add(token)
        session.flush()
        info = token_dict(token)
    return secret, info


def token_dict(token: ApiToken) -> dict:
    """The public view of a token (never the secret or its hash)."""
    return {"id": token.id, "name": token.name, "prefix": token.prefix, "created_at": token.created_at,
            "last_used_at": token.last_used_at, "revoked_at": token.revoked_at}


def list_tokens(sessions: sessionmaker[Session], user_name: str) -> list[dict]:
    """The tokens of a user, newest first. Raises NotFound."""
    with sessions() as session:
        user = _user(session, user_name)
        if user is None:
            raise NotFound(f"no user {user_name}")
        tokens = session.scalars(select(ApiToken).where(ApiToken.user_id == user.id)
                                 .order_by(ApiToken.id.desc())).all()
    return [token_dict(t) for t in tokens]


def revoke_token(sessions: sessionmaker[Session], user_name: str, token_id: int) -> None:
    """Revoke one token of a user (it fails at once). Raises NotFound."""
    with sessions.begin() as session:
        user = _user(session, user_name)
        token = session.get(ApiToken, token_id) if user is not None else None
        if token is None or token.user_id != user.id:
            raise NotFound(f"no token {token_id} of {user_name}")
        if token.revoked_at is None:
            token.revoked_at = utcnow()


def load_token(sessions: sessionmaker[Session], secret: str, now: datetime | None = None) -> Principal | None:
    """The Principal of a live token secret, else None; writes last_used_at at most every 30 s."""
    if not secret.startswith("pnp_"):
        return None
    now = now or utcnow()
    with sessions() as session:
        found = session.execute(select(ApiToken, OperatorUser)
                                .join(OperatorUser, OperatorUser.id == ApiToken.user_id)
                                .where(ApiToken.token_hash == _sha256(secret))).one_or_none()
    if found is None or found[0].revoked_at is not None:
        return None
    token, user = found
    if token.last_used_at is None or (now - token.last_used_at).total_seconds() >= TOUCH_EVERY:
        with sessions.begin() as session:
            session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
    return Principal(user.name, user.role, "token", user.id, token.id)


def env_token_principal(sessions: sessionmaker[Session], config: Config) -> Principal:
    """The Principal of the legacy ``ADMIN_TOKEN``: the first admin, ``via="env-token"``."""
    ensure_env_admin(sessions, config)
    with sessions() as session:
        user = _user(session, config.admin_user)
    return Principal(config.admin_user, "admin", "env-token", user.id if user else None, "env")
