"""An asyncio server (an async context manager) served on a thread and event loop of its own.

The blob server is an aiohttp application: it needs a running event loop. A test that runs
its own loop (``asyncio.run`` in a plain test, or pytest-asyncio's) or none at all can still
talk to it over loopback HTTP when it runs on a thread beside the test, which is what the
pytest plugin's ``blob_server`` fixture does. Its synchronous methods (``put_blob``, ``plan``,
``events``) are plain in-memory operations and may be called from the test's thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, Generic, TypeVar

T = TypeVar("T")

START_TIMEOUT_S = 30.0  # binding a loopback socket; a slower start is a hung start


class Background(Generic[T]):
    """``with Background(lambda: BlobServer(seed=0)) as server:`` -- ``server`` serving on a
    daemon thread until the block ends."""

    def __init__(self, factory: Callable[[], AbstractAsyncContextManager[T]]) -> None:
        self._factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._cm: AbstractAsyncContextManager[T] | None = None

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the server's loop and wait for its result."""
        if self._loop is None:
            raise RuntimeError("the background loop is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(START_TIMEOUT_S)

    def __enter__(self) -> T:
        ready = threading.Event()
        loop = asyncio.new_event_loop()

        def serve() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=serve, name="ota-hil-background", daemon=True)
        self._thread.start()
        ready.wait(START_TIMEOUT_S)
        self._cm = self._factory()

        async def enter() -> T:
            assert self._cm is not None
            return await self._cm.__aenter__()

        return self.run(enter())

    def __exit__(self, *exc_info: object) -> None:
        loop, thread, cm = self._loop, self._thread, self._cm
        if loop is None or thread is None:
            return
        try:
            if cm is not None:

                async def leave() -> None:
                    await cm.__aexit__(None, None, None)

                asyncio.run_coroutine_threadsafe(leave(), loop).result(START_TIMEOUT_S)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(START_TIMEOUT_S)
            self._loop = self._thread = self._cm = None
