"""Command line: ``sematic-metrics serve | migrate``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sematic_metrics.config import Settings
from sematic_metrics.errors import SematicMetricsError


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from sematic_metrics.app import create_app

    if args.workers > 1 and settings.embedded:
        raise SematicMetricsError(
            "--workers > 1 needs a ClickHouse server: the embedded engine locks its data "
            "directory to one process. Set SEMATIC_METRICS_CLICKHOUSE_URL or use one worker."
        )
    from sematic_metrics.migrate import migrate
    from sematic_metrics.store import Store

    host = args.host or settings.host
    port = settings.port if args.port is None else args.port
    # Open the store and apply the schema before binding, so a locked data
    # directory or an unreachable server fails with its own message.
    with Store(settings) as store:
        migrate(store)
        uvicorn.run(
            create_app(settings),
            host=host,
            port=port,
            log_level=args.log_level,
            timeout_graceful_shutdown=30,
            timeout_keep_alive=30,
        )
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from sematic_metrics.migrate import migrate
    from sematic_metrics.store import Store

    with Store(settings) as store:
        ran = migrate(store)
    print("\n".join(ran) if ran else "schema is up to date")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sematic-metrics", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="apply the schema and serve the HTTP API")
    serve.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default 8000)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (server mode only)")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(func=_serve)
    mig = sub.add_parser("migrate", help="apply schema files not yet applied")
    mig.set_defaults(func=_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
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
