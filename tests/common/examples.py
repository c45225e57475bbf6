"""Where hypothesis keeps the failing examples it found, so another run replays them.

``HYPOTHESIS_DATABASE`` chooses: unset (or ``dir:PATH``) a directory (hypothesis's own
default, ``.hypothesis/examples``); ``redis://HOST:PORT/DB`` or ``unix://PATH`` a Redis
server a team shares (hypothesis's ``RedisExampleDatabase``), so a failure found on one
machine replays on every other; ``none`` keeps nothing.
"""

from __future__ import annotations

import os

from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    ExampleDatabase,
    InMemoryExampleDatabase,
)

DEFAULT_DIRECTORY = ".hypothesis/examples"


def example_database(spec: str | None = None) -> ExampleDatabase:
    """The example database ``spec`` names (default: ``$HYPOTHESIS_DATABASE``)."""
    spec = os.environ.get("HYPOTHESIS_DATABASE", "") if spec is None else spec
    if not spec:
        return DirectoryBasedExampleDatabase(DEFAULT_DIRECTORY)
    if spec.startswith("dir:"):
        return DirectoryBasedExampleDatabase(spec[4:])
    if spec == "none":
        return InMemoryExampleDatabase()
    if spec.startswith(("redis://", "rediss://", "unix://")):
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase

        return RedisExampleDatabase(redis.Redis.from_url(spec))
    raise ValueError(
        f"HYPOTHESIS_DATABASE must be dir:PATH, redis://HOST:PORT/DB, unix://PATH or none, "
        f"got {spec!r}"
    )
