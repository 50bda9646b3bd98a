"""Rate limits shared by every worker: failed logins and API token use.

Limits are written as Flask-Limiter writes them (``"10 per minute"``, parsed by
its ``limits`` package). Counters are fixed windows kept in
``RATELIMIT_STORAGE_URI``:

* ``database`` (default): the ``rate_counter`` table of the server's own
  database, so every gunicorn worker, and every host sharing the database,
  counts together — nothing else to run;
* ``redis://host:port`` or ``memcached://…``: the ``limits`` package's storage (the
  ``redis`` client comes with ``limits[redis]``), keys under RATELIMIT_KEY_PREFIX;
* ``memory://``: per worker process (each worker counts alone).

A counter only ever blocks until its window ends, so the right password from a
shared address is refused at most for one window.
"""

from __future__ import annotations

import time

from limits import RateLimitItem, parse, storage, strategies
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from app.storage.models import RateCounter


class RateLimits:
    """Fixed-window counters in the database or a ``limits`` storage.

    ``hit(key, limit)`` counts one event and says whether it was within the limit;
    ``exceeded(key, limit)`` says whether the limit is already used up without
    counting; ``clear(key)`` forgets a counter. ``limit`` "" means no limit.
    """

    def __init__(self, sessions: sessionmaker[Session], uri: str = "database", prefix: str = "pnp") -> None:
        self.sessions = sessions
        self.uri = uri or "database"
        self.prefix = prefix or "pnp"
        self._limiter = None
        if self.uri != "database":
            self._limiter = strategies.FixedWindowRateLimiter(storage.storage_from_string(self.uri))

    def _key(self, key: str) -> str:
        """The key in a ``limits`` storage: RATELIMIT_KEY_PREFIX first (the storage adds its own too)."""
        return f"{self.prefix}:{key}"

    @staticmethod
    def _item(limit: str) -> RateLimitItem | None:
        return parse(limit) if limit else None

    def hit(self, key: str, limit: str) -> bool:
        """Count one event for ``key``; True when it is within ``limit``."""
        item = self._item(limit)
        if item is None:
            return True
        if self._limiter is not None:
            return self._limiter.hit(item, self._key(key))
        return self._db_hit(key, item) <= item.amount

    def exceeded(self, key: str, limit: str) -> bool:
        """True when ``key`` has used up ``limit`` in the current window (counts nothing)."""
        item = self._item(limit)
        if item is None:
            return False
        if self._limiter is not None:
            return not self._limiter.test(item, self._key(key))
        return self._db_count(key, item) >= item.amount

    def clear(self, key: str, limit: str) -> None:
        """Forget the counter of ``key``."""
        item = self._item(limit)
        if item is None:
            return
        if self._limiter is not None:
            self._limiter.clear(item, self._key(key))
            return
        with self.sessions.begin() as session:
            session.execute(delete(RateCounter).where(RateCounter.key == self._db_key(key, item)))

    # --- the database storage ----------------------------------------------------------------

    @staticmethod
    def _db_key(key: str, item: RateLimitItem) -> str:
        return f"{key}/{item.get_expiry()}"[:191]

    @staticmethod
    def _window(item: RateLimitItem) -> int:
        return int(time.time()) // item.get_expiry()

    def _db_count(self, key: str, item: RateLimitItem) -> int:
        with self.sessions() as session:
            row = session.get(RateCounter, self._db_key(key, item))
        return row.hits if row is not None and row.window_no == self._window(item) else 0

    def _db_hit(self, key: str, item: RateLimitItem) -> int:
        """One atomic increment: UPDATE of this window's row, else (re)start the window."""
        db_key, window = self._db_key(key, item), self._window(item)
        for _ in range(3):
            with self.sessions.begin() as session:
                done = session.execute(update(RateCounter).where(RateCounter.key == db_key,
                                                                 RateCounter.window_no == window)
                                       .values(hits=RateCounter.hits + 1)).rowcount
                if done:
                    return session.scalar(select(RateCounter.hits).where(RateCounter.key == db_key))
                restarted = session.execute(update(RateCounter).where(RateCounter.key == db_key,
                                                                      RateCounter.window_no < window)
                                            .values(window_no=window, hits=1)).rowcount
                if restarted:
                    return 1
            try:
                with self.sessions.begin() as session:
                    session.add(RateCounter(key=db_key, window_no=window, hits=1))
                return 1
            except IntegrityError:
                continue  # another worker created it: count on it
        return item.amount + 1  # could not count: treat as over the limit
