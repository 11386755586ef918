"""Every ``curl`` and ``sematic-metrics`` example of README.md and
schema/README.md runs as written against a real ``sematic-metrics serve``.

Examples are the lines of fenced ``sh``/``bash`` blocks (a synopsis with
placeholders such as ``[--port P]`` is a ``text`` block). Each runs in bash,
in its own directory, which is also its ``$HOME``, against a server on a free
port with its own data directory. Only the documented address
(``http://127.0.0.1:8000``, ``--port 8000``) and the ``KEY`` placeholder are
replaced. ``sematic-metrics`` finds the server the way the README says,
through the configured bind address (``SEMATIC_METRICS_PORT``). An
``export`` line sets the environment of the lines after it in its block.

- ``serve`` and ``demo`` serve until stopped: each starts on a free port and
  its own data directory, must answer ``/healthz``, and stop cleanly on SIGTERM.
- Commands that open the data directory (``migrate``, ``import-sematic
  --direct``) get one of their own, migrated beforehand, as a deployed
  service's would be (the running server holds its own).
- ``--db sqlite:///PATH``: PATH is created as an empty Sematic 0.41 database
  (Sematic's own schema file), as a fresh Sematic install leaves it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import signal
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyarrow.parquet as pq
import pytest

from tests._sematic import SEMATIC_VENV, sematic_problem
from tests._support import T0, ServerProcess, compact, free_port, run_labels, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("README.md", "schema/README.md")
DOCUMENTED_URL = "http://127.0.0.1:8000"
DOCUMENTED_PORT = re.compile(r"--port 8000\b")
KEY_PLACEHOLDER = re.compile(r"\bKEY\b")
BIN_DIR = Path(sys.executable).parent
# Lines of these programs are not run here, each for its reason:
SKIPPED = {
    # `make run` and `make demo` install and then serve until stopped, and
    # `make test` is the whole suite, this test included: CI runs the targets.
    "make": "a Makefile target (CI runs them)",
    # No Docker engine on the test machines; tests/test_store.py checks the
    # compose file's pinned image and healthchecks.
    "docker": "needs a Docker engine",
    # Needs a ClickHouse server and its client; the statements it would run
    # are `migrate --print` output, which the migrate tests parse with the
    # engine's parser (EXPLAIN AST).
    "clickhouse-client": "needs a ClickHouse server and clickhouse-client",
    # Sematic's own server: Sematic is not a dependency of this project;
    # tests/test_upstream.py runs it from its own virtualenv.
    "sematic": "Sematic's own command",
}
# Examples of a run program that still cannot run here, and why (shown as skips).
NOT_HERE = {
    # A PostgreSQL server holding a Sematic database: the importer tests start
    # one, load it with Sematic's own migrations and run this path through the CLI.
    "postgresql://": "needs a PostgreSQL server with a Sematic database (tests/test_import_sematic.py)",
}
RUN = frozenset({"curl", "sematic-metrics"})
# Commands that serve until stopped: started, checked healthy, then stopped.
LONG_RUNNING = frozenset({"serve", "demo"})
# After a clean shutdown on SIGTERM, uvicorn re-raises the signal.
CLEAN_EXIT = (0, -signal.SIGTERM)


@dataclass(frozen=True)
class Example:
    doc: str
    line: int
    command: str
    env: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.doc}:{self.line}"

    @property
    def words(self) -> list[str]:
        return shlex.split(self.command, comments=True)

    @property
    def needs_server(self) -> bool:
        """Run against a ClickHouse server: the example points the service at one."""
        return "SEMATIC_METRICS_CLICKHOUSE_URL" in self.env

    @property
    def long_running(self) -> bool:
        words = self.words
        return len(words) > 1 and words[0] == "sematic-metrics" and words[1] in LONG_RUNNING

    @property
    def opens_data_dir(self) -> bool:
        words = self.words
        if words[:1] != ["sematic-metrics"] or len(words) < 2:
            return False
        return words[1] == "migrate" or (words[1] == "import-sematic" and "--direct" in words)


def programs(command: str) -> list[str]:
    """The programs a shell line runs (the first word of each pipeline stage)."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars="|&;<>")
    lexer.whitespace_split = True
    lexer.commenters = "#"
    found, expect = [], True
    for token in lexer:
        if expect and not set(token) <= set("|&;<>"):
            found.append(token)
            expect = False
        elif token in ("|", "||", "&&", ";", "&"):
            expect = True
    return found


def shell_lines(doc: str) -> Iterator[tuple[int, str, dict[str, str]]]:
    """(line number, command, environment from earlier exports) of every fenced sh block."""
    text = (ROOT / doc).read_text()
    for block in re.finditer(r"^```(?:sh|bash|shell)\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        first = text.count("\n", 0, block.start(1)) + 1
        env: dict[str, str] = {}
        pending: list[str] = []
        start = first
        for offset, raw in enumerate(block.group(1).splitlines()):
            if not pending:
                start = first + offset
            if raw.rstrip().endswith("\\"):
                pending.append(raw.rstrip()[:-1])
                continue
            command = " ".join(part.strip() for part in [*pending, raw]).strip()
            pending = []
            if not command or command.startswith("#"):
                continue
            if command.startswith("export "):
                for assignment in shlex.split(command[len("export ") :], comments=True):
                    name, _, value = assignment.partition("=")
                    env[name] = value
                continue
            yield start, command, dict(env)


def examples() -> list[Example]:
    found = []
    for doc in DOCS:
        for line, command, env in shell_lines(doc):
            if RUN & set(programs(command)):
                found.append(Example(doc, line, command, env))
    return found


EXAMPLES = examples()


def params() -> list[object]:
    out: list[object] = []
    for e in EXAMPLES:
        marks: list[pytest.MarkDecorator] = [pytest.mark.server] if e.needs_server else []
        marks += [pytest.mark.skip(reason=why) for what, why in NOT_HERE.items() if what in e.command]
        out.append(pytest.param(e, id=e.id, marks=marks))
    return out


def test_every_shell_line_is_run_or_skipped_for_a_stated_reason() -> None:
    assert any("curl" in programs(e.command) for e in EXAMPLES)
    assert any("sematic-metrics" in programs(e.command) for e in EXAMPLES)
    for doc in DOCS:
        for line, command, _ in shell_lines(doc):
            ran = set(programs(command))
            assert ran & RUN or ran & set(SKIPPED), (
                f"{doc}:{line}: {command!r} is neither run by this test nor of a skipped kind"
            )


def test_the_synopsis_is_not_an_example() -> None:
    # Placeholders cannot run as written: a synopsis goes in a ``text`` block.
    for example in EXAMPLES:
        assert not re.search(r"\[--|\.\.\.\"", example.command), example.id


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the module, holding a few points of `loss` and `steps`."""
    port = free_port()
    data_dir = tmp_path_factory.mktemp("readme") / "data"
    with ServerProcess(data_dir, env={"SEMATIC_METRICS_PORT": str(port)}, port=port) as process:
        body = compact(
            run_labels("r1"), ["loss", "loss", "steps"], [0.5, 0.25, 2.0], [T0, T0 + 1, T0 + 2], [1, 1, 0]
        )
        response = httpx.post(f"{process.url}/api/v1/metrics", json=body, timeout=60)
        assert response.status_code == 200, response.text
        yield process
        assert process.stop() in CLEAN_EXIT, process.log_tail()


@pytest.fixture(scope="module")
def migrated_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory that `sematic-metrics migrate` brought to the schema files."""
    data_dir = tmp_path_factory.mktemp("readme-migrated") / "data"
    env = example_env({"SEMATIC_METRICS_DATA_DIR": str(data_dir)})
    done = subprocess.run(
        ["sematic-metrics", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return data_dir


def example_env(extra: dict[str, str]) -> dict[str, str]:
    """The user's shell: no SEMATIC_METRICS_ variable but the example's, the
    installed ``sematic-metrics`` first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMATIC_METRICS_")}
    env["PATH"] = f"{BIN_DIR}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def create_sematic_sqlite(command: str, home: Path) -> None:
    """Each ``--db sqlite:///PATH`` as an empty Sematic 0.41 database."""
    for match in re.finditer(r"sqlite:///(\S+)", command):
        problem = sematic_problem()
        if problem is not None:
            pytest.skip(problem)
        schema = sorted(SEMATIC_VENV.glob("lib/python3*/site-packages/sematic/db/schema.sql.sqlite"))
        assert schema, "Sematic 0.41 ships sematic/db/schema.sql.sqlite"
        path = Path(match.group(1).replace("$HOME", str(home)))
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.executescript(schema[0].read_text())


def is_error(text: str) -> bool:
    with contextlib.suppress(ValueError):
        answer = json.loads(text)
        return isinstance(answer, dict) and "error" in answer
    return False


def check_outputs(workdir: Path, before: set[Path], stdout: str, stderr: str) -> None:
    """The answer is on stdout (or stderr, for progress and summaries) or in the
    files the example wrote, and is not an error."""
    files = sorted(p for p in workdir.rglob("*") if p.is_file() and p not in before)
    assert stdout.strip() or stderr.strip() or files, "the example answered nothing"
    assert not is_error(stdout), stdout
    for path in files:
        data = path.read_bytes()
        assert data, f"{path.name} is empty"
        if path.suffix == ".parquet":
            table = pq.read_table(io.BytesIO(data))
            assert table.num_rows > 0, path.name
        else:
            assert not is_error(data.decode(errors="replace")), data[:500]


@pytest.mark.parametrize("example", params())
def test_example_runs_as_written(example: Example, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    if example.needs_server:
        run_against_clickhouse_server(example, request.getfixturevalue("clickhouse_url"), home)
        return
    env = example_env({**example.env, "HOME": str(home)})
    if example.long_running:
        port = free_port()
        command = DOCUMENTED_PORT.sub(f"--port {port}", example.command)
        env.update(SEMATIC_METRICS_DATA_DIR=str(tmp_path / "data"), SEMATIC_METRICS_PORT=str(port))
        run_until_healthy(command, env, home, port)
        return
    server: ServerProcess = request.getfixturevalue("server")
    command = KEY_PLACEHOLDER.sub("readme-key", example.command.replace(DOCUMENTED_URL, server.url))
    env["SEMATIC_METRICS_PORT"] = str(server.port)
    if example.opens_data_dir:
        env["SEMATIC_METRICS_DATA_DIR"] = str(request.getfixturevalue("migrated_dir"))
    create_sematic_sqlite(command, home)
    before = set(home.rglob("*"))
    done = subprocess.run(
        ["bash", "-c", command], cwd=home, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, f"{example.id}: exit {done.returncode}\n{done.stderr}{done.stdout}"
    assert "sematic-metrics:" not in done.stderr, done.stderr
    check_outputs(home, before, done.stdout, done.stderr)


def run_against_clickhouse_server(example: Example, clickhouse_url: str, home: Path) -> None:
    assert example.long_running, f"{example.id}: only serve examples point at a server"
    port = free_port()
    env = example_env(
        {
            **example.env,
            "HOME": str(home),
            "SEMATIC_METRICS_CLICKHOUSE_URL": clickhouse_url,
            "SEMATIC_METRICS_DATABASE": f"readme_{uuid.uuid4().hex[:8]}",
            "SEMATIC_METRICS_PORT": str(port),
        }
    )
    run_until_healthy(DOCUMENTED_PORT.sub(f"--port {port}", example.command), env, home, port)


def run_until_healthy(command: str, env: dict[str, str], workdir: Path, port: int) -> None:
    """Start a serving example, wait until it answers /healthz, stop it with
    SIGTERM and expect a clean shutdown."""
    url = f"http://127.0.0.1:{port}/healthz"
    log = workdir / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def healthy() -> bool:
            assert process.poll() is None, log.read_text(errors="replace")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(url, timeout=2).status_code == 200
            return False

        wait_until(healthy, 120, "the example server to answer /healthz")
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(60) in CLEAN_EXIT, log.read_text(errors="replace")
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
