"""The service's settings: from `hashwatch serve` options, or the environment in each worker."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields

from hashwatch.media import MediaLimits

__all__ = ["ServiceSettings"]

_ENV_PREFIX = "HASHWATCH_SERVE_"


@dataclass(frozen=True)
class ServiceSettings:
    #: Database URL; None means HASHWATCH_DB or the embedded default.
    db_url: str | None = None
    #: A change committed anywhere is matched by every worker within this many seconds; /readyz
    #: answers 503 when the indexes are older than this.
    max_staleness: float = 5.0
    #: Requests per second per API key in each worker (bursts of twice that); 0 turns it off.
    rate_limit: float = 100.0
    #: Longest an upload may be, in bytes (413 beyond).
    max_upload_bytes: int = MediaLimits().max_bytes
    #: Most pixels an uploaded image may decode to (a decompression bomb is refused unread).
    max_pixels: int = MediaLimits().max_pixels
    #: Most hashes in one match request, and most entries in one bulk add (413 beyond).
    max_batch: int = 10_000
    max_entries_per_request: int = 100_000
    #: A request not answered within this many seconds gets 503 and its work is dropped.
    request_timeout: float = 30.0
    #: Also record, in the audit log, the hashes of content that matched nothing.
    log_unmatched: bool = False
    #: How long an authenticated key, and an organisation's matchable lists, are reused before
    #: being read again: a revoked key or grant stops working in other workers within this.
    auth_cache_seconds: float = 1.0
    #: Where media waiting for assessment is kept, encrypted (hashwatch.mediastore); None means
    #: HASHWATCH_MEDIA_DIR or ./hashwatch-media. The key comes from HASHWATCH_MEDIA_KEY only,
    #: never from an option, so it stays out of process listings.
    media_dir: str | None = None
    #: Worker processes serving (set by `hashwatch serve --workers`).
    workers: int = 1
    #: Match requests (batches and images) each worker runs at once; 0 means the machine's
    #: cores shared among the workers. More than that only makes threads contend for one
    #: process's interpreter lock: on 2 cores with 2 workers, one at a time per worker matched
    #: 25,900 hashes/s in batches of 1,000 where unlimited threads gave 15,600-23,800
    #: (docs/benchmarks.md).
    match_threads: int = 0

    @property
    def match_concurrency(self) -> int:
        if self.match_threads > 0:
            return self.match_threads
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cores = os.cpu_count() or 1
        return max(1, cores // max(1, self.workers))

    @property
    def refresh_interval(self) -> float:
        """Poll the change feed five times per staleness period: a change is seen well in time."""
        return max(self.max_staleness / 5, 0.05)

    def media_limits(self) -> MediaLimits:
        return MediaLimits(max_bytes=self.max_upload_bytes, max_pixels=self.max_pixels)

    def to_env(self) -> dict[str, str]:
        """These settings as environment variables, for worker processes that uvicorn starts."""
        env = {}
        for name, value in asdict(self).items():
            if value is not None:
                env[_ENV_PREFIX + name.upper()] = str(
                    int(value) if isinstance(value, bool) else value
                )
        return env

    @classmethod
    def from_env(cls) -> ServiceSettings:
        values: dict[str, object] = {}
        defaults = cls()
        for item in fields(cls):
            raw = os.environ.get(_ENV_PREFIX + item.name.upper())
            if raw is None:
                continue
            default = getattr(defaults, item.name)
            if isinstance(default, bool):
                values[item.name] = raw.strip().lower() in ("1", "true", "yes")
            elif isinstance(default, int):
                values[item.name] = int(raw)
            elif isinstance(default, float):
                values[item.name] = float(raw)
            else:
                values[item.name] = raw
        return cls(**values)  # type: ignore[arg-type]
