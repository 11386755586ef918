"""Server-Sent Events plumbing of the live stream: the event encoding, one
subscriber's queue, the streaming response, and a uvicorn server that ends
open streams before it waits for connections to close."""

from __future__ import annotations

import asyncio
import collections
import time
from typing import Any, Protocol

import orjson
import uvicorn
from starlette.responses import Response
from starlette.types import Receive, Scope, Send


def sse(event: str, data: dict[str, Any], event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\n".encode() + b"data: " + orjson.dumps(data) + b"\n\n"


class StreamSource(Protocol):
    keepalive_s: float
    max_stream_s: float

    def unsubscribe(self, sub: Subscriber) -> None: ...


class Subscriber:
    """One open stream: a queue of encoded events."""

    def __init__(self, run_id: str, max_queued: int) -> None:
        self.run_id = run_id
        self.chunks: collections.deque[bytes] = collections.deque()
        self.wake = asyncio.Event()
        self.active = False  # receives events once its ready event was queued
        self.closed = False
        self._max = max_queued

    def push(self, chunk: bytes) -> None:
        if len(self.chunks) >= self._max:
            self.close()  # a client that does not read: it reconnects and resumes
            return
        self.chunks.append(chunk)
        self.wake.set()

    def close(self) -> None:
        self.closed = True
        self.wake.set()


class EventStream(Response):
    """A text/event-stream response fed by one Subscriber, ended on disconnect."""

    def __init__(self, hub: StreamSource, sub: Subscriber) -> None:
        # No super().__init__(): it would announce a zero Content-Length.
        self.hub = hub
        self.sub = sub
        self.status_code = 200
        self.background = None
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sub, hub = self.sub, self.hub

        async def watch() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            sub.close()

        watcher = asyncio.get_running_loop().create_task(watch())
        deadline = time.monotonic() + hub.max_stream_s
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            await send({"type": "http.response.body", "body": b"retry: 1000\n\n", "more_body": True})
            while not sub.closed:
                timeout = min(hub.keepalive_s, deadline - time.monotonic())
                if timeout <= 0:
                    break
                try:
                    await asyncio.wait_for(sub.wake.wait(), timeout)
                except asyncio.TimeoutError:
                    body = b": keep-alive\n\n"
                else:
                    sub.wake.clear()
                    body = b"".join(sub.chunks)
                    sub.chunks.clear()
                if body:
                    await send({"type": "http.response.body", "body": body, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError:
            pass  # the client went away
        finally:
            watcher.cancel()
            hub.unsubscribe(sub)


class Server(uvicorn.Server):
    """uvicorn's server, ending live streams first so a shutdown does not wait on them."""

    async def shutdown(self, sockets: Any = None) -> None:
        service = getattr(getattr(self.config.app, "state", None), "service", None)
        hub = getattr(service, "hub", None)
        if hub is not None:
            hub.close()
        await super().shutdown(sockets)
