"""Command line: ``sematic-metrics serve | migrate | sql | import-sematic | demo``."""

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
from dataclasses import replace
from pathlib import Path

from sematic_metrics.errors import ConfigError, SematicMetricsError
from sematic_metrics.service.config import PREFIX, Settings, parse_upstream

SQL_FORMATS = ("table", "csv", "json", "arrow", "parquet")
_BINARY_FORMATS = ("arrow", "parquet")


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from sematic_metrics.service.migrate import migrate
    from sematic_metrics.service.store import Store

    if args.workers < 1:
        raise ConfigError(f"--workers {args.workers}: give at least one worker")
    if args.sematic_upstream is not None:
        upstream = parse_upstream(args.sematic_upstream)
        settings = replace(settings, sematic_upstream=upstream)
        # Worker processes build their settings from the environment.
        os.environ[f"{PREFIX}SEMATIC_UPSTREAM"] = upstream or ""
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
            from sematic_metrics.service._sse import Server
            from sematic_metrics.service.app import create_app

            # Server closes open live streams first, so shutdown does not wait on them.
            Server(uvicorn.Config(create_app(settings), **options)).run()
            return 0
    # Server mode: each worker process builds its app from the same environment;
    # the schema is already applied, so the workers find nothing to migrate.
    uvicorn.run("sematic_metrics.service.app:create_app", factory=True, workers=args.workers, **options)
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from sematic_metrics.service import _tiers
    from sematic_metrics.service.migrate import changes, migrate, render_script
    from sematic_metrics.service.store import Store

    if args.cluster:  # validated like the environment variable
        settings = Settings.from_env({**os.environ, f"{PREFIX}CLICKHOUSE_CLUSTER": args.cluster})
    if args.print and settings.cluster:  # the whole script for a fresh cluster; connects to nothing
        sys.stdout.write(render_script(settings))
        return 0
    with Store(settings) as store:
        if args.print or args.check:
            found = changes(store)
            if args.print:
                for change in found:
                    print(f"-- {change.describe()}")
                    for statement in change.statements:
                        print(statement + ";")
                    print()
            else:
                for change in found:
                    print(change.describe())
            print(f"{len(found)} differences from the schema files" if found else "schema matches the files")
            return 1 if found and args.check else 0
        ran = migrate(store)
        backfilled = _tiers.backfill(store)
    print("\n".join(ran) if ran else "schema is up to date")
    if backfilled:
        print(f"rollup tiers: {backfilled} points aggregated from metric_points")
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


def _import_sematic(args: argparse.Namespace, settings: Settings) -> int:
    from sematic_metrics.service import importer

    key = args.api_key if args.api_key is not None else os.environ.get(f"{PREFIX}API_KEY", "")
    return importer.main(
        args.db,
        url=None if args.direct else (args.url or server_url(settings)),
        settings=settings,
        api_key=key,
        include_open=args.include_open,
        timeout=args.timeout,
    )


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
    serve.add_argument(
        "--sematic-upstream",
        default=None,
        metavar="URL",
        help="front this Sematic server: answer the metrics API, forward everything else "
        "(default SEMATIC_METRICS_SEMATIC_UPSTREAM)",
    )
    serve.set_defaults(func=_serve)
    mig = sub.add_parser(
        "migrate",
        help="apply new table files and bring every view to its definition file",
        description="Applies schema/tables files not yet applied and creates, replaces or drops "
        "views until each matches its schema/definitions file.",
    )
    what = mig.add_mutually_exclusive_group()
    what.add_argument(
        "--print",
        action="store_true",
        help="print what would change in the database and the statements, run nothing "
        "(with a cluster: the whole script for a fresh cluster, connecting to nothing)",
    )
    what.add_argument(
        "--check",
        action="store_true",
        help="list the differences between the database and the files; exit 1 when there are any",
    )
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
    imp = sub.add_parser(
        "import-sematic",
        help="copy the runs and metrics of a Sematic database into the service",
        description="Reads a Sematic 0.41 database (SQLite or PostgreSQL) in chunks and copies its runs and "
        "metric points (not its sematic.* system metrics, which are computed here from the runs) into the "
        "running service, or with --direct into the store. Re-running it stores nothing twice.",
    )
    imp.add_argument(
        "--db",
        required=True,
        metavar="URL",
        help="Sematic's DATABASE_URL: sqlite:///path or postgresql://...",
    )
    target = imp.add_mutually_exclusive_group()
    target.add_argument(
        "--url", default=None, help="service address (default SEMATIC_METRICS_URL or the bind address)"
    )
    target.add_argument(
        "--direct",
        action="store_true",
        help="write into the store (data directory) instead; no server running",
    )
    imp.add_argument("--api-key", default=None, help="API key (default SEMATIC_METRICS_API_KEY)")
    imp.add_argument(
        "--include-open",
        action="store_true",
        help="also copy the newest points, which Sematic may still add to (use once Sematic is stopped)",
    )
    imp.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for each answer")
    imp.set_defaults(func=_import_sematic)
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
