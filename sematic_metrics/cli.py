"""Command line: ``sematic-metrics serve | migrate | sql | demo``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from sematic_metrics.errors import ConfigError, SematicMetricsError
from sematic_metrics.service.config import PREFIX, Settings

SQL_FORMATS = ("table", "csv", "json", "arrow", "parquet")
_BINARY_FORMATS = ("arrow", "parquet")


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from sematic_metrics.service.migrate import migrate
    from sematic_metrics.service.store import Store

    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give at least one worker")
    if args.workers > 1 and settings.embedded:
        raise ConfigError(
            "--workers > 1 needs a ClickHouse server: the embedded engine locks its data "
            "directory to one process. Set SEMATIC_METRICS_CLICKHOUSE_URL or use one worker."
        )
    options = {
        "host": args.host or settings.host,
        "port": settings.port if args.port is None else args.port,
        "log_level": args.log_level,
        "timeout_graceful_shutdown": 30,
        "timeout_keep_alive": 30,
    }
    # Open the store and apply the schema before binding, so a locked data
    # directory or an unreachable server fails with its own message.
    with Store(settings) as store:
        migrate(store)
        if args.workers == 1:
            from sematic_metrics.service.app import create_app
            from sematic_metrics.service.stream import Server

            # Server closes open live streams first, so shutdown does not wait on them.
            Server(uvicorn.Config(create_app(settings), **options)).run()
            return 0
    # Server mode: each worker process builds its app from the same environment;
    # the schema is already applied, so the workers find nothing to migrate.
    uvicorn.run("sematic_metrics.service.app:create_app", factory=True, workers=args.workers, **options)
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from sematic_metrics.service.migrate import migrate, render
    from sematic_metrics.service.store import Store

    if args.cluster:  # validated like the environment variable
        settings = Settings.from_env({**os.environ, f"{PREFIX}CLICKHOUSE_CLUSTER": args.cluster})
    if args.print:
        sys.stdout.write(render(settings))
        return 0
    with Store(settings) as store:
        ran = migrate(store)
    print("\n".join(ran) if ran else "schema is up to date")
    return 0


def server_url(settings: Settings) -> str:
    """The service's address: SEMATIC_METRICS_URL, else the configured bind address."""
    explicit = os.environ.get(f"{PREFIX}URL", "").strip()
    if explicit:
        return explicit.rstrip("/")
    host = settings.host if settings.host not in ("", "0.0.0.0", "::") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.port}"


def _sql(args: argparse.Namespace, settings: Settings) -> int:
    query = sys.stdin.read() if args.query == "-" else args.query
    if args.format in _BINARY_FORMATS and not args.output and sys.stdout.isatty():
        raise ConfigError(f"--format {args.format} is binary: pass --output FILE or redirect stdout")
    url = (args.url or server_url(settings)).rstrip("/")
    key = args.api_key if args.api_key is not None else os.environ.get(f"{PREFIX}API_KEY", "")
    headers = {"Content-Type": "application/json"}
    if key:
        headers["X-API-KEY"] = key
    body = json.dumps({"sql": query, "format": args.format}).encode()
    request = urllib.request.Request(f"{url}/api/v1/sql", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            data: bytes = response.read()
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        with contextlib.suppress(ValueError, AttributeError):
            detail = str(json.loads(detail).get("error", detail))
        raise SematicMetricsError(f"the server answered {exc.code}: {detail.strip()[:2000]}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SematicMetricsError(
            f"cannot reach the server at {url} ({reason}). Start it with `sematic-metrics serve`, "
            f"or pass --url / set {PREFIX}URL."
        ) from None
    if args.output:
        Path(args.output).write_bytes(data)
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return 0


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    try:
        demo = importlib.import_module("sematic_metrics.service.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "sematic_metrics.service.demo":
            raise
        raise ConfigError(
            "the demo is not part of this installation (sematic_metrics.service.demo is missing)"
        ) from None
    return int(demo.main(list(args.args)) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sematic-metrics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="apply the schema and serve the HTTP API")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument(
        "--workers", type=int, default=1, help="worker processes (needs a ClickHouse server when > 1)"
    )
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)
    mig = sub.add_parser("migrate", help="apply schema files not yet applied")
    mig.add_argument("--print", action="store_true", help="print the statements instead of running them")
    mig.add_argument(
        "--cluster", default=None, help="cluster name (default SEMATIC_METRICS_CLICKHOUSE_CLUSTER)"
    )
    mig.set_defaults(func=_migrate)
    sql = sub.add_parser(
        "sql",
        help="run a read-only SQL query through the running server",
        description="Runs one read statement through the server's /api/v1/sql endpoint; "
        "never opens the data directory, so it works while the server runs.",
    )
    sql.add_argument("query", help="the SQL statement, or - to read it from stdin")
    sql.add_argument("--format", choices=SQL_FORMATS, default="table")
    sql.add_argument(
        "--url", default=None, help="server address (default SEMATIC_METRICS_URL or the bind address)"
    )
    sql.add_argument("--api-key", default=None, help="API key (default SEMATIC_METRICS_API_KEY)")
    sql.add_argument("--output", "-o", default=None, help="write the result to this file")
    sql.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for the answer")
    sql.set_defaults(func=_sql)
    demo = sub.add_parser("demo", help="fill the store with a demo and serve it", add_help=False)
    demo.add_argument("args", nargs=argparse.REMAINDER, help="arguments for the demo")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:  # everything after it, options included, is the demo's
        args = argparse.Namespace(func=_demo, args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        return int(args.func(args, settings))
    except SematicMetricsError as exc:
        print(f"sematic-metrics: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
