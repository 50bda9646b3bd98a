"""Hooks on a device row change written with SQLAlchemy Core (no ORM flush to listen to).

The PnP hot path (app/pnp/service.py) writes the ``device_state`` row with one Core
``UPDATE``; the webhook outbox and the failure lines of app/ops/notify.py, which sit above
it, register here what they do on such a change (an ORM flush of the same change calls
them from its ``before_flush`` hook instead). The registry belongs to one session factory
(it travels in each of its sessions' ``info``), so every application has its own.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

#: ``session.info`` key of the registered hooks (a tuple)
KEY = "pnp_row_change_hooks"

#: ``hook(session, row, old_state, state_set, new_error)``: ``row`` the written row (its new
#: values as attributes), ``old_state`` its state before, ``state_set`` True when the state
#: changed, ``new_error`` True when ``last_error_message`` changed.
RowHook = Callable[[Session, object, str | None, bool, bool], None]


def on_row_change(sessions: sessionmaker[Session], hook: RowHook) -> None:
    """Register ``hook`` for every device row change written with Core through ``sessions``'
    sessions (registering the same hook twice keeps one)."""
    info = dict(sessions.kw.get("info") or {})
    hooks = info.get(KEY, ())
    if hook not in hooks:
        info[KEY] = (*hooks, hook)
        sessions.configure(info=info)


def row_changed(session: Session, row, old_state: str | None, state_set: bool, new_error: bool) -> None:
    """Call the hooks registered for ``session``'s factory, in registration order, inside the
    transaction that wrote the change (what they add commits or rolls back with it)."""
    for hook in session.info.get(KEY, ()):
        hook(session, row, old_state, state_set, new_error)
