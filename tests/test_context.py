"""Run context: run() as context manager and decorator, env inheritance, Sematic's context."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest

from sematic_metrics import run, sdk
from sematic_metrics.errors import InvalidInputError
from sematic_metrics.sdk import context
from sematic_metrics.sdk.context import (
    ENV_FUNCTION_PATH,
    ENV_ROOT_FUNCTION_PATH,
    ENV_ROOT_ID,
    ENV_RUN_ID,
    ENV_VARS,
    RunInfo,
    current_run,
)


@pytest.fixture(autouse=True)
def no_run_in_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    context.refresh_env()
    sdk.configure(record_runs=False)  # no server here; tests/test_sdk_runs.py checks run records
    yield
    sdk.configure(record_runs=None)
    context.refresh_env()


def ids(info: RunInfo | None) -> tuple[str, str, str, str] | None:
    if info is None:
        return None
    return (info.run_id, info.root_id, info.function_path, info.root_function_path)


def test_outside_any_run_there_is_no_run() -> None:
    assert current_run() is None


def test_a_top_level_run_is_its_own_root() -> None:
    with run(function_path="pipe.main") as info:
        assert current_run() is info
        assert len(info.run_id) == 32
        assert ids(info) == (info.run_id, info.run_id, "pipe.main", "pipe.main")
    assert current_run() is None


def test_nested_runs_inherit_the_root() -> None:
    with run(run_id="root", function_path="pipe.main") as outer:
        with run(run_id="child", function_path="pipe.train") as inner:
            assert ids(current_run()) == ("child", "root", "pipe.train", "pipe.main")
        assert current_run() is outer
        with run(run_id="other", root_id="elsewhere") as detached:
            assert ids(detached) == ("other", "elsewhere", "", "")
    assert ids(inner) == ("child", "root", "pipe.train", "pipe.main")


def test_label_sets_carry_the_scope_and_extra_labels() -> None:
    with run(run_id="r", function_path="f", labels={"team": "vision"}) as info:
        run_labels, pipeline_labels = (s.resolve() for s in info.label_sets)
    common = {
        "run_id": "r",
        "root_id": "r",
        "function_path": "f",
        "root_function_path": "f",
        "team": "vision",
    }
    assert run_labels == {"__scope__": "0", **common}
    assert pipeline_labels == {"__scope__": "1", **common}


def test_the_run_is_exported_to_the_environment_and_restored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_RUN_ID, "from-outside")
    context.refresh_env()
    with run(run_id="child", function_path="pipe.train"):
        assert os.environ[ENV_RUN_ID] == "child"
        assert os.environ[ENV_ROOT_ID] == "from-outside"  # the env run is the parent
        assert os.environ[ENV_FUNCTION_PATH] == "pipe.train"
        assert os.environ[ENV_ROOT_FUNCTION_PATH] == ""
    assert os.environ[ENV_RUN_ID] == "from-outside"
    assert ENV_ROOT_ID not in os.environ
    assert ids(current_run()) == ("from-outside", "from-outside", "", "")


def test_without_export_the_environment_is_untouched() -> None:
    with run(run_id="quiet", export_env=False):
        assert ENV_RUN_ID not in os.environ
        assert current_run() is not None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({ENV_RUN_ID: "r1"}, ("r1", "r1", "", "")),
        ({ENV_RUN_ID: "r1", ENV_FUNCTION_PATH: "a.b"}, ("r1", "r1", "a.b", "a.b")),
        ({ENV_RUN_ID: "r1", ENV_ROOT_ID: "r0", ENV_FUNCTION_PATH: "a.b"}, ("r1", "r0", "a.b", "")),
        (
            {ENV_RUN_ID: "r1", ENV_ROOT_ID: "r0", ENV_FUNCTION_PATH: "a.b", ENV_ROOT_FUNCTION_PATH: "a.p"},
            ("r1", "r0", "a.b", "a.p"),
        ),
        ({ENV_ROOT_ID: "r0"}, None),
        ({ENV_RUN_ID: "   "}, None),
    ],
    ids=["run-only", "run-and-path", "child", "full", "no-run-id", "blank-run-id"],
)
def test_the_environment_describes_a_run(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: tuple[str, ...] | None
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    context.refresh_env()
    assert ids(current_run()) == expected


def test_the_environment_is_read_at_first_use_not_at_every_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_RUN_ID, "first")
    assert ids(current_run()) == ("first", "first", "", "")
    monkeypatch.setenv(ENV_RUN_ID, "second")
    assert current_run().run_id == "first"  # type: ignore[union-attr]
    context.refresh_env()
    assert current_run().run_id == "second"  # type: ignore[union-attr]


def test_child_processes_inherit_the_run() -> None:
    code = (
        "import json; from sematic_metrics.sdk.context import current_run; r = current_run(); "
        "print(json.dumps([r.run_id, r.root_id, r.function_path, r.root_function_path]))"
    )
    with run(run_id="root", function_path="pipe.main"), run(run_id="step", function_path="pipe.step"):
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["step", "root", "pipe.step", "pipe.main"]


def test_threads_see_the_run_through_the_environment() -> None:
    seen: dict[str, Any] = {}

    def look(key: str) -> None:
        seen[key] = ids(current_run())

    with run(run_id="exported"):
        t = threading.Thread(target=look, args=("exported",))
        t.start()
        t.join(10)
    with run(run_id="private", export_env=False):
        t = threading.Thread(target=look, args=("private",))
        t.start()
        t.join(10)
    assert seen == {"exported": ("exported", "exported", "", ""), "private": None}


def train_step() -> RunInfo | None:
    return current_run()


def test_as_a_decorator_each_call_is_a_new_run() -> None:
    decorated = run(train_step)
    first, second = decorated(), decorated()
    assert first is not None and second is not None
    assert first.run_id != second.run_id
    assert first.function_path == f"{__name__}.train_step"
    assert decorated.__name__ == "train_step"
    with run(run_id="pipeline", function_path="pipe.main"):
        inner = run(labels={"k": "v"})(train_step)()
    assert inner is not None
    assert (inner.root_id, inner.root_function_path, inner.labels) == ("pipeline", "pipe.main", {"k": "v"})
    fixed = run(run_id="fixed", function_path="given.path")(train_step)()
    assert ids(fixed) == ("fixed", "fixed", "given.path", "given.path")
    assert current_run() is None


def test_an_async_function_can_be_decorated() -> None:
    @run(function_path="pipe.async_step")
    async def step() -> RunInfo | None:
        await asyncio.sleep(0)
        return current_run()

    info = asyncio.run(step())
    assert info is not None and info.function_path == "pipe.async_step"
    assert current_run() is None


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"run_id": ""}, "must not be empty"),
        ({"run_id": 7}, "must be a string"),
        ({"function_path": "x" * 9000}, "limit is 8192"),
        ({"labels": {"run_id": "x"}}, "reserved"),
        ({"labels": {"__scope__": "1"}}, "reserved"),
        ({"labels": {"": "x"}}, "keys must be"),
        ({"labels": {"k": 1}}, "must be a string"),
        ({"labels": {f"k{i}": "v" for i in range(121)}}, "limit is 120"),
    ],
    ids=[
        "empty-run-id",
        "int-run-id",
        "long-path",
        "reserved-run-id",
        "reserved-scope",
        "empty-key",
        "int-value",
        "too-many",
    ],
)
def test_bad_run_arguments_raise(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        run(**kwargs)


@pytest.fixture
def sematic(monkeypatch: pytest.MonkeyPatch) -> types.SimpleNamespace:
    """Sematic's modules as Sematic 0.41 lays them out, with a settable context."""
    state = types.SimpleNamespace(paths={}, calls=[])
    future_context = types.ModuleType("sematic.future_context")
    future_context._current_context = None  # type: ignore[attr-defined]

    def get_context() -> Any:
        if future_context._current_context is None:
            raise RuntimeError("not in a Sematic function")
        return future_context._current_context

    def get_run(run_id: str) -> Any:
        state.calls.append(run_id)
        return types.SimpleNamespace(function_path=state.paths[run_id])

    future_context.context = get_context  # type: ignore[attr-defined]
    api_client = types.ModuleType("sematic.api_client")
    api_client.get_run = get_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "sematic.future_context", future_context)
    monkeypatch.setitem(sys.modules, "sematic.api_client", api_client)

    def activate(run_id: str | None, root_id: str = "") -> None:
        ctx = None if run_id is None else types.SimpleNamespace(run_id=run_id, root_id=root_id)
        future_context._current_context = ctx  # type: ignore[attr-defined]

    state.activate = activate
    return state


def test_sematic_context_gives_the_run_when_active(sematic: types.SimpleNamespace) -> None:
    assert current_run() is None
    sematic.activate("s-run", "s-root")
    sematic.paths.update({"s-run": "sem.train", "s-root": "sem.main"})
    info = current_run()
    assert info is not None and (info.run_id, info.root_id) == ("s-run", "s-root")
    assert current_run() is info  # cached per run: no new label sets per call
    assert sematic.calls == []  # function paths are looked up later, by the sender
    labels = info.label_sets[0].resolve()
    assert (labels["function_path"], labels["root_function_path"]) == ("sem.train", "sem.main")
    info.label_sets[1].resolve()
    assert sorted(sematic.calls) == ["s-root", "s-run"]  # once per run id
    with run(run_id="explicit") as explicit:
        assert current_run() is explicit  # an explicit run() wins
        assert explicit.root_id == "s-root"
    sematic.activate(None)
    assert current_run() is None


def test_a_failed_sematic_lookup_keeps_the_points_with_empty_paths(
    sematic: types.SimpleNamespace, caplog: pytest.LogCaptureFixture
) -> None:
    sematic.activate("unknown-run", "unknown-root")
    info = current_run()
    assert info is not None
    with caplog.at_level(logging.WARNING, logger="sematic_metrics.sdk.context"):
        labels = info.label_sets[0].resolve()
    assert (labels["run_id"], labels["function_path"], labels["root_function_path"]) == (
        "unknown-run",
        "",
        "",
    )
    assert any("no function path" in r.getMessage() for r in caplog.records)
