"""Where ``import-sematic`` sends its batches: the running service over HTTP,
or (``--direct``) the service's own app in this process, spoken to through
ASGI, so both paths validate, deduplicate and store exactly alike."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Protocol

from sematic_metrics.errors import AuthError, SematicMetricsError, StoreError
from sematic_metrics.service.config import Settings

log = logging.getLogger(__name__)
# Answers worth retrying with the same Idempotency-Key.
_RETRY = frozenset({408, 425, 429, 500, 502, 503, 504})


Request = tuple[str, bytes, str]  # path, body, Idempotency-Key
Answer = tuple[int, dict[str, Any]]


class Sink(Protocol):
    where: str

    def post(self, path: str, body: bytes, key: str) -> Answer: ...
    def post_many(self, requests: list[Request]) -> list[Answer]: ...
    def close(self) -> None: ...


def _json(data: bytes) -> dict[str, Any]:
    try:
        value = json.loads(data or b"{}")
    except ValueError:
        return {"error": data[:500].decode(errors="replace")}
    return value if isinstance(value, dict) else {"content": value}


class HttpSink:
    """POSTs over keep-alive connections; retries transient failures with the same key.

    ``post_many`` sends its requests at once over ``parallel`` connections: the
    service's group commit then stores them in one INSERT (the compact form
    carries one label set per request, and Sematic keeps one per run)."""

    def __init__(
        self, url: str, api_key: str = "", timeout: float = 120.0, retry_for: float = 120.0, parallel: int = 8
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SematicMetricsError(
                f"--url {url!r}: give the service's address, such as http://127.0.0.1:8000"
            )
        self.where = url.rstrip("/")
        self._parts = parts
        self._prefix = parts.path.rstrip("/")
        self._timeout = timeout
        self._retry_for = retry_for
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["X-API-KEY"] = api_key
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: set[http.client.HTTPConnection] = set()
        self._parallel = parallel
        self._pool: ThreadPoolExecutor | None = None

    def _connect(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._parts.scheme == "https" else http.client.HTTPConnection
            conn = self._local.conn = cls(self._parts.hostname or "", self._parts.port, timeout=self._timeout)
            with self._lock:
                self._conns.add(conn)
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
            with self._lock:
                self._conns.discard(conn)

    def post_many(self, requests: list[Request]) -> list[Answer]:
        if len(requests) <= 1:
            return [self.post(*r) for r in requests]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._parallel, thread_name_prefix="import-sematic")
        return list(self._pool.map(lambda r: self.post(*r), requests))

    def post(self, path: str, body: bytes, key: str) -> Answer:
        deadline = time.monotonic() + self._retry_for
        delay = 0.25
        while True:
            problem: str
            try:
                conn = self._connect()
                conn.request("POST", self._prefix + path, body, {**self._headers, "Idempotency-Key": key})
                response = conn.getresponse()
                status, data = response.status, response.read()
            except (OSError, http.client.HTTPException) as exc:
                self._drop()
                problem = f"cannot reach it ({exc})"
            else:
                if status in (401, 403):
                    raise AuthError(
                        f"the service at {self.where} refused the API key ({status}): pass --api-key "
                        "or set SEMATIC_METRICS_API_KEY to a key with the write scope"
                    )
                if status not in _RETRY:
                    return status, _json(data)
                problem = f"it answered {status}: {_json(data).get('error', '')}"
            if time.monotonic() + delay > deadline:
                raise StoreError(
                    f"the service at {self.where} did not take a batch: {problem}. Start it with "
                    "`sematic-metrics serve` (or pass --direct), then re-run: batches already stored "
                    "are recognised and not stored twice"
                )
            log.warning("%s%s: %s; retrying in %.1fs", self.where, path, problem, delay)
            time.sleep(delay)
            delay = min(delay * 2, 8.0)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for conn in conns:
            conn.close()
        self._local = threading.local()


class DirectSink:
    """The service's app in this process: its lifespan opens the store (an
    embedded data directory must not be held by a running server)."""

    def __init__(self, settings: Settings, app_factory: Callable[[Settings], Any] | None = None) -> None:
        if app_factory is None:
            from sematic_metrics.service.app import create_app

            app_factory = create_app
        self.where = settings.dsn.split("@")[-1] + f" (database {settings.database})"
        # The operator holds the data itself: no API keys in-process.
        self._app: Any = app_factory(replace(settings, api_keys=()))
        self._loop = asyncio.new_event_loop()
        self._lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._lifespan_out: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task = self._loop.create_task(self._run_lifespan())
        started = self._loop.run_until_complete(self._lifespan("startup"))
        if started["type"] != "lifespan.startup.complete":
            try:  # Starlette re-raises the startup error here: it names the cause
                self._loop.run_until_complete(self._task)
            finally:
                self._loop.close()
            raise StoreError(
                f"cannot open the store {self.where}: {started.get('message', 'startup failed')}"
            )

    async def _run_lifespan(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await self._app(scope, self._lifespan_in.get, self._lifespan_out.put)

    async def _lifespan(self, what: str) -> dict[str, Any]:
        await self._lifespan_in.put({"type": f"lifespan.{what}"})
        return await self._lifespan_out.get()

    async def _request(self, path: str, body: bytes, key: str) -> tuple[int, bytes]:
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers.append((b"idempotency-key", key.encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
            "state": {},
        }
        sent = False
        status = 500
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()  # the body is complete: wait like a quiet client
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self._app(scope, receive, send)
        return status, b"".join(chunks)

    def post(self, path: str, body: bytes, key: str) -> Answer:
        return self.post_many([(path, body, key)])[0]

    def post_many(self, requests: list[Request]) -> list[Answer]:
        """All at once, so the service's group commit stores them in one INSERT."""

        async def all_of() -> list[tuple[int, bytes]]:
            return list(await asyncio.gather(*(self._request(*r) for r in requests)))

        answers = []
        for status, data in self._loop.run_until_complete(all_of()):
            if status in _RETRY:
                raise StoreError(f"the store {self.where} did not take a batch ({status}): {_json(data)}")
            answers.append((status, _json(data)))
        return answers

    def close(self) -> None:
        if self._loop.is_closed():
            return
        self._loop.run_until_complete(self._lifespan("shutdown"))
        self._loop.run_until_complete(self._task)
        self._loop.close()
