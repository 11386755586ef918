"""Run context: which run a metric point belongs to.

Looked up in this order: the innermost ``run(...)`` of the current thread or
task (a contextvar), the active Sematic function (only when ``sematic`` is
already imported, so it is never imported here), then the
``SEMATIC_METRICS_*`` environment variables that ``run`` exports so child
processes inherit the run. The environment is read at first use and again
after each ``run`` entry or exit, or after ``refresh_env()``.

``run`` also records the run's lifecycle on the server (``_runs``): its parent
is the run that was current at entry, here, in Sematic or in the environment.
"""

from __future__ import annotations

import contextvars
import functools
import importlib
import inspect
import logging
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar, overload

from sematic_metrics.errors import InvalidInputError
from sematic_metrics.rules import MAX_LABEL_KEY, MAX_LABEL_VALUE, ROOT_FILTER
from sematic_metrics.rules import WELL_KNOWN_LABELS as WELL_KNOWN
from sematic_metrics.sdk import _runs

log = logging.getLogger(__name__)

ENV_RUN_ID = "SEMATIC_METRICS_RUN_ID"
ENV_ROOT_ID = "SEMATIC_METRICS_ROOT_ID"
ENV_FUNCTION_PATH = "SEMATIC_METRICS_FUNCTION_PATH"
ENV_ROOT_FUNCTION_PATH = "SEMATIC_METRICS_ROOT_FUNCTION_PATH"
ENV_VARS = (ENV_RUN_ID, ENV_ROOT_ID, ENV_FUNCTION_PATH, ENV_ROOT_FUNCTION_PATH)
# The server's limits on labels (sematic_metrics.rules) are checked here too, so a
# bad label fails at run() rather than dropping batches later.
MAX_EXTRA_LABELS = 120
SCOPE_VALUES = ("0", "1")  # MetricScope.RUN, MetricScope.PIPELINE

F = TypeVar("F", bound=Callable[..., Any])


class LabelSet:
    """The labels shared by the points of one run and scope; the sender groups by it.

    Labels that need a lookup (function paths of a Sematic run) are resolved
    by the sender thread, once, so ``log_metric`` never waits on the network.
    """

    __slots__ = ("_labels", "_resolver")

    def __init__(
        self,
        labels: dict[str, str],
        resolver: Callable[[dict[str, str]], dict[str, str]] | None = None,
    ) -> None:
        self._labels = labels
        self._resolver = resolver

    def resolve(self) -> dict[str, str]:
        if self._resolver is not None:
            resolver, self._resolver = self._resolver, None
            try:
                self._labels = resolver(dict(self._labels))
            except Exception as exc:  # a lookup failure must not lose the points
                log.warning("sematic-metrics: could not resolve run labels %s: %s", self._labels, exc)
        return self._labels

    def __repr__(self) -> str:
        return f"LabelSet({self._labels!r})"


class RunInfo:
    """An active run: its ids, function paths, extra labels, one LabelSet per scope."""

    __slots__ = (
        "function_path",
        "label_sets",
        "labels",
        "parent_id",
        "root_function_path",
        "root_id",
        "run_id",
    )

    def __init__(
        self,
        run_id: str,
        root_id: str,
        function_path: str = "",
        root_function_path: str = "",
        labels: Mapping[str, str] | None = None,
        resolver: Callable[[dict[str, str]], dict[str, str]] | None = None,
        parent_id: str | None = None,
    ) -> None:
        self.run_id = run_id
        self.parent_id = parent_id
        self.root_id = root_id
        self.function_path = function_path
        self.root_function_path = root_function_path
        self.labels: dict[str, str] = dict(labels or {})
        base = {
            **self.labels,
            "run_id": run_id,
            "function_path": function_path,
            "root_id": root_id,
            "root_function_path": root_function_path,
        }
        self.label_sets: tuple[LabelSet, LabelSet] = tuple(  # type: ignore[assignment]
            LabelSet({"__scope__": scope, **base}, resolver) for scope in SCOPE_VALUES
        )

    def __repr__(self) -> str:
        return (
            f"RunInfo(run_id={self.run_id!r}, root_id={self.root_id!r}, "
            f"function_path={self.function_path!r}, root_function_path={self.root_function_path!r})"
        )


_current: contextvars.ContextVar[RunInfo | None] = contextvars.ContextVar("sematic_metrics_run", default=None)
# The run described by the environment: _UNREAD until read.
_UNREAD: Any = object()
_env_run: RunInfo | None = _UNREAD
_sematic_runs: dict[tuple[str, str], RunInfo] = {}
_sematic_paths: dict[str, str] = {}


def current_run() -> RunInfo | None:
    """The run that log_metric would use here, or None outside any run."""
    return _current.get() or sematic_run() or env_run()


def refresh_env() -> None:
    """Read the SEMATIC_METRICS_* run variables again at next use."""
    global _env_run
    _env_run = _UNREAD


def env_run() -> RunInfo | None:
    global _env_run
    found = _env_run
    if found is _UNREAD:
        found = _env_run = _read_env(os.environ)
    return found


def _read_env(env: Mapping[str, str]) -> RunInfo | None:
    run_id = env.get(ENV_RUN_ID, "").strip()
    if not run_id:
        return None
    root_id = env.get(ENV_ROOT_ID, "").strip() or run_id
    function_path = env.get(ENV_FUNCTION_PATH, "").strip()
    root_function_path = env.get(ENV_ROOT_FUNCTION_PATH, "").strip()
    if not root_function_path and root_id == run_id:
        root_function_path = function_path
    try:
        for name, value in ((ENV_RUN_ID, run_id), (ENV_ROOT_ID, root_id)):
            _check_value(name, value)
        _check_value(ENV_FUNCTION_PATH, function_path)
        _check_value(ENV_ROOT_FUNCTION_PATH, root_function_path)
    except InvalidInputError as exc:
        log.warning("sematic-metrics: ignoring the run in the environment: %s", exc)
        return None
    return RunInfo(run_id, root_id, function_path, root_function_path)


def sematic_run() -> RunInfo | None:
    """The active Sematic function's run, if Sematic is imported and running one."""
    module = sys.modules.get("sematic.future_context")
    if module is None or getattr(module, "_current_context", True) is None:
        return None
    try:
        ctx = module.context()
        run_id, root_id = str(ctx.run_id), str(ctx.root_id)
    except Exception:
        return None
    found = _sematic_runs.get((run_id, root_id))
    if found is None:
        if len(_sematic_runs) > 1000:
            _sematic_runs.clear()
        found = _sematic_runs[(run_id, root_id)] = RunInfo(run_id, root_id, resolver=_sematic_function_paths)
    return found


def _sematic_function_paths(labels: dict[str, str]) -> dict[str, str]:
    """Fill function_path / root_function_path from Sematic's API (sender thread)."""
    for path_key, id_key in (("function_path", "run_id"), ("root_function_path", "root_id")):
        run_id = labels[id_key]
        if run_id not in _sematic_paths:
            try:  # Sematic is running here, so importing its client is safe
                api = importlib.import_module("sematic.api_client")
                _sematic_paths[run_id] = str(api.get_run(run_id).function_path)
            except Exception as exc:
                log.warning("sematic-metrics: no function path for Sematic run %s: %s", run_id, exc)
                _sematic_paths[run_id] = ""
        labels[path_key] = _sematic_paths.get(run_id, "")
    return labels


def _check_value(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInputError(f"{name}: must be a string, got {type(value).__name__}")
    if len(value) > MAX_LABEL_VALUE:
        raise InvalidInputError(f"{name}: {len(value)} characters; the limit is {MAX_LABEL_VALUE}")
    return value


def _check_labels(labels: Mapping[str, str] | None) -> dict[str, str]:
    if not labels:
        return {}
    if len(labels) > MAX_EXTRA_LABELS:
        raise InvalidInputError(f"labels: {len(labels)} labels; the limit is {MAX_EXTRA_LABELS}")
    checked: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not key or len(key) > MAX_LABEL_KEY:
            raise InvalidInputError(f"labels: keys must be strings of 1 to {MAX_LABEL_KEY} characters")
        if key in WELL_KNOWN or key == ROOT_FILTER:
            raise InvalidInputError(
                f"labels.{key}: reserved; pass run_id, root_id, function_path and "
                "root_function_path as arguments of run()"
            )
        checked[key] = _check_value(f"labels.{key}", value)
    return checked


def _path_of(func: Callable[..., Any]) -> str:
    module = getattr(func, "__module__", None) or ""
    name = getattr(func, "__qualname__", None) or getattr(func, "__name__", "")
    return f"{module}.{name}" if module else str(name)


class RunContext:
    """``with run(...)`` or ``@run(...)``: log_metric calls inside belong to the run.

    As a decorator each call of the function is a new run (a new run_id unless
    one was given).
    """

    def __init__(
        self,
        run_id: str | None = None,
        root_id: str | None = None,
        function_path: str | None = None,
        root_function_path: str | None = None,
        labels: Mapping[str, str] | None = None,
        export_env: bool = True,
        record: bool = True,
        name: str | None = None,
    ) -> None:
        self.run_id = None if run_id is None else _check_value("run_id", run_id)
        if self.run_id is not None and not self.run_id.strip():
            raise InvalidInputError("run_id: must not be empty; omit it to get a fresh id")
        self.root_id = None if root_id is None else _check_value("root_id", root_id)
        self.function_path = None if function_path is None else _check_value("function_path", function_path)
        self.root_function_path = (
            None if root_function_path is None else _check_value("root_function_path", root_function_path)
        )
        self.labels = _check_labels(labels)
        self.export_env = export_env
        if not isinstance(record, bool):
            raise InvalidInputError(f"record: {record!r} must be True or False")
        self.record = record
        self.name = None if name is None else _check_value("name", name)
        self._stack: list[
            tuple[contextvars.Token[RunInfo | None], dict[str, str | None] | None, _runs.OpenRun | None]
        ] = []

    def _info(self, parent: RunInfo | None) -> RunInfo:
        run_id = self.run_id or uuid.uuid4().hex
        function_path = self.function_path or ""
        if self.root_id is not None:
            root_id = self.root_id
        else:
            root_id = parent.root_id if parent is not None else run_id
        if self.root_function_path is not None:
            root_function_path = self.root_function_path
        elif parent is not None and parent.root_id == root_id:
            root_function_path = parent.root_function_path
        else:
            root_function_path = function_path if root_id == run_id else ""
        parent_id = parent.run_id if parent is not None and parent.root_id == root_id else None
        return RunInfo(run_id, root_id, function_path, root_function_path, self.labels, parent_id=parent_id)

    def __enter__(self) -> RunInfo:
        global _env_run
        in_sematic = sematic_run() is not None  # Sematic records its own runs
        info = self._info(current_run())
        saved: dict[str, str | None] | None = None
        if self.export_env:
            saved = {name: os.environ.get(name) for name in ENV_VARS}
            values = (info.run_id, info.root_id, info.function_path, info.root_function_path)
            for name, value in zip(ENV_VARS, values, strict=True):
                os.environ[name] = value
            _env_run = info
        opened = None
        if self.record and not in_sematic:
            opened = _runs.begin(info, self.name or info.function_path.rpartition(".")[2])
        self._stack.append((_current.set(info), saved, opened))
        return info

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        token, saved, opened = self._stack.pop()
        _runs.end(opened, exc)
        _current.reset(token)
        if saved is not None:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            refresh_env()

    def _fresh(self, func: Callable[..., Any]) -> RunContext:
        return RunContext(
            self.run_id,
            self.root_id,
            self.function_path if self.function_path is not None else _path_of(func),
            self.root_function_path,
            self.labels,
            self.export_env,
            self.record,
            self.name if self.name is not None else getattr(func, "__name__", None),
        )

    def __call__(self, func: F) -> F:
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                with self._fresh(func):
                    return await func(*args, **kwargs)

            return run_async  # type: ignore[return-value]

        @functools.wraps(func)
        def run_sync(*args: Any, **kwargs: Any) -> Any:
            with self._fresh(func):
                return func(*args, **kwargs)

        return run_sync  # type: ignore[return-value]


@overload
def run(func: F, /) -> F: ...


@overload
def run(
    *,
    run_id: str | None = None,
    root_id: str | None = None,
    function_path: str | None = None,
    root_function_path: str | None = None,
    labels: Mapping[str, str] | None = None,
    export_env: bool = True,
    record: bool = True,
    name: str | None = None,
) -> RunContext: ...


def run(
    func: Callable[..., Any] | None = None,
    /,
    *,
    run_id: str | None = None,
    root_id: str | None = None,
    function_path: str | None = None,
    root_function_path: str | None = None,
    labels: Mapping[str, str] | None = None,
    export_env: bool = True,
    record: bool = True,
    name: str | None = None,
) -> Any:
    """A run context for log_metric: ``with run(...)``, ``@run(...)`` or ``@run``.

    Defaults: ``run_id`` a fresh id; ``root_id`` the enclosing run's root (or
    this run's id at top level); ``function_path`` the decorated function's
    ``module.qualname`` (empty for ``with``); ``root_function_path`` the
    enclosing run's (or this run's function path at top level). ``labels`` adds
    extra labels to every point. With ``export_env`` (the default) the run is
    also written to the SEMATIC_METRICS_* environment variables while it is
    active, so child processes inherit it.

    The run is recorded on the server (``POST /api/v1/runs``): SCHEDULED at
    entry, then RESOLVED, FAILED, NESTED_FAILED or CANCELED at exit, with the
    enclosing run as its parent. ``record=False`` opts out; runs without a
    function_path and runs inside a Sematic function are never recorded.
    ``name`` is the run's display name (default: the function's name, else the
    last part of function_path).
    """
    ctx = RunContext(run_id, root_id, function_path, root_function_path, labels, export_env, record, name)
    return ctx if func is None else ctx(func)
