"""What one API worker process holds: the store, the matcher kept fresh from the change feed,
cached authentication, the rate limiter, and the match log waiting to be written.

One background thread loads the matcher, then polls the change feed: every change committed by
any process (the CLI, another worker) is applied to the in-memory indexes within the configured
staleness, while request threads go on matching (hashwatch.matching.Matcher is safe for that).
"""

from __future__ import annotations

import gc
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert

from hashwatch import keys, sharing, webhooks
from hashwatch.api.settings import ServiceSettings
from hashwatch.errors import InvalidInput
from hashwatch.matching import Matcher
from hashwatch.mediastore import MediaStore
from hashwatch.store import Store, open_store
from hashwatch.store.models import AuditEvent, Organisation

__all__ = ["MatchLog", "Principal", "RateLimiter", "ServiceState"]

log = logging.getLogger("hashwatch.api")

#: Seconds between looks for due webhook deliveries.
WEBHOOK_INTERVAL = 1.0
#: Seconds between writes of the match log.
MATCH_LOG_INTERVAL = 0.25


@dataclass(frozen=True)
class Principal:
    """Who is calling: an organisation, through one of its keys."""

    organisation_id: int
    organisation: str
    key_id: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"


class RateLimiter:
    """A token bucket per key: `rate` requests per second, bursts of up to twice that."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(2 * rate, 1.0)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """0 when the request may go ahead, else the seconds to wait before trying again."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


class MatchLog:
    """Match requests waiting to be written to the audit log, in one insert per flush.

    A row per request written in the request itself would put a database write on every match;
    batching them keeps the log complete (flushed every refresh interval and at shutdown) at a
    cost the request never sees.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def record(self, who: Principal, at: datetime, detail: dict[str, Any]) -> None:
        row = {
            "at": at,
            "actor": who.actor,
            "organisation_id": who.organisation_id,
            "action": "match",
            "list_id": None,
            "detail": {"key_id": who.key_id, **detail},
        }
        with self._lock:
            self._pending.append(row)

    def flush(self) -> int:
        with self._lock:
            rows, self._pending = self._pending, []
        if rows:
            try:
                with self._store.session() as session:
                    session.execute(insert(AuditEvent), rows)
            except Exception:
                with self._lock:  # keep them for the next flush: the log must stay complete
                    self._pending[:0] = rows
                raise
        return len(rows)


class ServiceState:
    def __init__(self, settings: ServiceSettings, store: Store | None = None) -> None:
        self.settings = settings
        self._owns_store = store is None
        self.store = store or open_store(settings.db_url)
        self.matcher: Matcher | None = None
        self.refreshed_at: float | None = None  # monotonic time the last good refresh began
        self.last_error: str | None = None
        self.rate_limiter = RateLimiter(settings.rate_limit)
        #: Taken by each match request run in the thread pool (see ServiceSettings.match_threads).
        self.match_gate = threading.BoundedSemaphore(settings.match_concurrency)
        self.match_log = MatchLog(self.store)
        self._keys: dict[str, tuple[Principal, float]] = {}
        self._matchable: dict[int, tuple[frozenset[int], float]] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._media: MediaStore | None = None

    def media_store(self) -> MediaStore:
        """The encrypted store of media waiting for assessment, opened on first use; raises
        MediaStoreError when it is not configured (no HASHWATCH_MEDIA_KEY)."""
        if self._media is None:
            self._media = MediaStore.from_config(self.settings.media_dir)
        return self._media

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._threads = [
            threading.Thread(target=self._run, name="hashwatch-refresh", daemon=True),
            threading.Thread(target=self._write_match_log, name="hashwatch-log", daemon=True),
        ]
        if os.environ.get(webhooks.KEY_ENV):
            self._threads.append(
                threading.Thread(
                    target=self._deliver_webhooks, name="hashwatch-webhooks", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def _deliver_webhooks(self) -> None:
        """Send due webhook deliveries every second; a failure is logged, never fatal."""
        try:
            key = webhooks.server_key()
        except InvalidInput:
            log.exception("webhooks are off: the webhook key is not valid")
            return
        while not self._stop.wait(WEBHOOK_INTERVAL):
            try:
                webhooks.deliver_due(self.store, key)
            except Exception:
                log.exception("webhook deliveries failed; retrying")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        self._threads = []
        try:
            self.match_log.flush()
        except Exception:
            log.exception("could not write the match log at shutdown")
        if self._owns_store:
            self.store.close()

    def wait_ready(self, timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.matcher is not None:
                return True
            time.sleep(0.02)
        return False

    def _run(self) -> None:
        while not self._stop.is_set():
            begun = time.monotonic()
            try:
                with self.store.session() as session:
                    if self.matcher is None:
                        loaded = Matcher.from_store(session, None)
                        # Millions of long-lived objects: keep them out of every later garbage
                        # collection, whose full passes would otherwise stall requests.
                        gc.freeze()
                        self.refreshed_at = begun  # before the matcher: ready means fresh
                        self.matcher = loaded
                    else:
                        self.matcher.refresh(session)
                self.refreshed_at = begun
                self.last_error = None
            except Exception as exc:
                # The database may be down for a moment: keep matching on what is held, and let
                # /readyz say how stale it is.
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("refreshing the match indexes failed")
            self._stop.wait(self.settings.refresh_interval)

    def _write_match_log(self) -> None:
        # Often, in small inserts: one large insert a second would hold the interpreter long
        # enough to show in request latency.
        while not self._stop.wait(MATCH_LOG_INTERVAL):
            try:
                self.match_log.flush()
            except Exception:
                log.exception("writing the match log failed; will retry")

    def refresh_now(self) -> None:
        """Apply the change feed at once (tests, and an operator's nudge)."""
        if self.matcher is None:
            return
        begun = time.monotonic()
        with self.store.session() as session:
            self.matcher.refresh(session)
        self.refreshed_at = begun

    # --- readiness -----------------------------------------------------------------------

    def staleness(self) -> float | None:
        if self.refreshed_at is None:
            return None
        return time.monotonic() - self.refreshed_at

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        staleness = self.staleness()
        ready = (
            self.matcher is not None
            and staleness is not None
            and staleness <= self.settings.max_staleness
        )
        detail: dict[str, Any] = {
            "ready": ready,
            "loaded": self.matcher is not None,
            "entries": len(self.matcher) if self.matcher is not None else 0,
            "staleness_seconds": None if staleness is None else round(staleness, 3),
            "max_staleness_seconds": self.settings.max_staleness,
        }
        if self.last_error:
            detail["last_error"] = self.last_error
        return ready, detail

    # --- authentication and access ---------------------------------------------------------

    def authenticate(self, presented: str) -> Principal | None:
        now = time.monotonic()
        cached = self._keys.get(presented)
        if cached is not None and cached[1] > now:
            return cached[0]
        with self.store.session() as session:
            key = keys.authenticate(session, presented)
            if key is None:
                self._keys.pop(presented, None)
                return None
            organisation = session.get(Organisation, key.organisation_id)
            assert organisation is not None
            principal = Principal(
                organisation_id=organisation.id,
                organisation=organisation.name,
                key_id=key.key_id,
                scopes=frozenset(key.scopes),
            )
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[presented] = (principal, now + self.settings.auth_cache_seconds)
        return principal

    def matchable_lists(self, organisation_id: int) -> frozenset[int]:
        now = time.monotonic()
        cached = self._matchable.get(organisation_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        with self.store.session() as session:
            ids = frozenset(sharing.matchable_list_ids(session, organisation_id))
        self._matchable[organisation_id] = (ids, now + self.settings.auth_cache_seconds)
        return ids

    def forget_access(self) -> None:
        """Grants or lists changed in this worker: read them again at the next request."""
        self._matchable.clear()


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
