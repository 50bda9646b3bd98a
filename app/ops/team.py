"""Team administration as audited actions: users, personal API tokens, webhooks.

The one implementation behind the console's Users, Account and Webhooks pages,
the API's ``/users``, ``/tokens`` and ``/webhooks`` and ``run.py users ...``:
each function does the change (app/ops/accounts.py, app/ops/notify.py) and
records it in the audit log (app/ops/audit.py) with who did it, via what and
from where (``actor``: app/ops/bulk.py's Actor). A refused change raises
ActionError or NotFound and is not audited (nothing changed).
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from app.ops import accounts, notify
from app.ops.audit import record
from app.ops.bulk import Actor
from app.ops.errors import NotFound


def _audit(sessions: sessionmaker[Session], actor: Actor, action: str, target: str,
           detail: str | None = None) -> None:
    record(sessions, actor.name, actor.via, action, target=target, address=actor.address, detail=detail)


# --- users --------------------------------------------------------------------------------------


def get_user(sessions: sessionmaker[Session], name: str) -> dict:
    """One user as in ``accounts.list_users`` (sessions and live tokens counted). Raises NotFound."""
    for user in accounts.list_users(sessions):
        if user["name"] == name:
            return user
    raise NotFound(f"no user {name}")


def add_user(sessions: sessionmaker[Session], actor: Actor, name: str, role: str, password: str) -> dict:
    """Create a user (audited ``user-add``). Raises ActionError (bad name, role or password, taken)."""
    user = accounts.add_user(sessions, name, role, password)
    _audit(sessions, actor, "user-add", name, f"role {role}")
    return user


def set_role(sessions: sessionmaker[Session], actor: Actor, name: str, role: str) -> None:
    """Give a user another role (audited ``user-role``). Raises NotFound, ActionError (last admin)."""
    accounts.set_role(sessions, name, role)
    _audit(sessions, actor, "user-role", name, f"role {role}")


def set_password(sessions: sessionmaker[Session], actor: Actor, name: str, password: str,
                 keep: str | None = None) -> None:
    """Set a password; the user's sessions end except ``keep`` (audited ``user-passwd``).
    Raises NotFound, ActionError (too short)."""
    accounts.set_password(sessions, name, password, keep=keep)
    _audit(sessions, actor, "user-passwd", name)


def end_sessions(sessions: sessionmaker[Session], actor: Actor, name: str) -> int:
    """End every session of a user at once (audited ``user-logout``); how many ended."""
    ended = accounts.end_sessions(sessions, name)
    _audit(sessions, actor, "user-logout", name, f"{ended} sessions ended")
    return ended


def remove_user(sessions: sessionmaker[Session], actor: Actor, name: str) -> None:
    """Remove a user with their sessions and tokens (audited ``user-remove``).
    Raises NotFound, ActionError (last admin)."""
    accounts.remove_user(sessions, name)
    _audit(sessions, actor, "user-remove", name)


# --- personal API tokens ------------------------------------------------------------------------


def create_token(sessions: sessionmaker[Session], actor: Actor, user: str, token_name: str) -> tuple[str, dict]:
    """A new personal token of ``user``: ``(secret, info)``, the secret shown once
    (audited ``token-create``). Raises NotFound, ActionError (no name)."""
    secret, info = accounts.create_token(sessions, user, token_name)
    _audit(sessions, actor, "token-create", user, f"token {info['id']} {info['name']}")
    return secret, info


def revoke_token(sessions: sessionmaker[Session], actor: Actor, user: str, token_id: int) -> None:
    """Revoke one token of ``user`` (audited ``token-revoke``). Raises NotFound."""
    accounts.revoke_token(sessions, user, token_id)
    _audit(sessions, actor, "token-revoke", user, f"token {token_id}")


# --- webhooks -----------------------------------------------------------------------------------


def get_webhook(sessions: sessionmaker[Session], hook_id: int) -> dict:
    """One webhook as in ``notify.list_webhooks``. Raises NotFound."""
    for hook in notify.list_webhooks(sessions):
        if hook["id"] == hook_id:
            return hook
    raise NotFound(f"no webhook {hook_id}")


def add_webhook(sessions: sessionmaker[Session], actor: Actor, name: str, url: str, events: list[str],
                preset: str = "json", secret: str | None = None) -> dict:
    """Create a webhook (audited ``webhook-add``); a random HMAC secret when none is given.
    Raises ActionError (URL, events, preset)."""
    hook = notify.add_webhook(sessions, name, url, events, preset, secret)
    _audit(sessions, actor, "webhook-add", hook["name"], f"{hook['url']} {','.join(hook['events'])}")
    return hook


def remove_webhook(sessions: sessionmaker[Session], actor: Actor, hook_id: int) -> None:
    """Delete a webhook and its queue (audited ``webhook-remove``). Raises NotFound."""
    notify.remove_webhook(sessions, hook_id)
    _audit(sessions, actor, "webhook-remove", str(hook_id))


def send_test(sessions: sessionmaker[Session], actor: Actor, hook_id: int) -> None:
    """Queue a test event for one webhook (audited ``webhook-test``). Raises NotFound."""
    notify.queue_test(sessions, hook_id)
    _audit(sessions, actor, "webhook-test", str(hook_id))
