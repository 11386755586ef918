"""Run the Sematic 0.41 server in the foreground, SQLite under SEMATIC_CONFIG_DIR.

Runs with the peer's own interpreter (benchmarks/.venv-sematic/bin/python):
it imports only Sematic. The same steps as ``sematic start`` (the CLI
migrates, then ``run_locally``), without daemonizing or opening a browser.
Set PORT for the port; the database is $SEMATIC_CONFIG_DIR/db.sqlite3.
"""

from __future__ import annotations

import logging
import sys


def main() -> int:
    # Sematic is installed in the peer's virtualenv only.
    from sematic.config.config import switch_env  # type: ignore[import-not-found]
    from sematic.db.migrate import migrate_up  # type: ignore[import-not-found]

    switch_env("local")
    logging.basicConfig(level=logging.WARNING)
    migrate_up()
    from sematic.api.server import run_locally  # type: ignore[import-not-found]

    run_locally(debug=False, make_daemon=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
