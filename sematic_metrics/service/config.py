"""Settings read once from SEMATIC_METRICS_* environment variables."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sematic_metrics.errors import ConfigError

PREFIX = "SEMATIC_METRICS_"
SCOPES = ("read", "write", "admin")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


@dataclass(frozen=True)
class ApiKey:
    name: str
    key: str
    scopes: frozenset[str] = frozenset(SCOPES)


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("data")
    clickhouse_url: str = ""
    database: str = "sematic_metrics"
    api_keys: tuple[ApiKey, ...] = ()
    max_body_bytes: int = 32 * 1024 * 1024
    body_timeout_s: float = 30.0
    ttl_days: int | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    commit_max_points: int = 1_000_000
    read_pool_size: int = 4
    cluster: str | None = None
    sematic_upstream: str | None = None
    series_cache_mb: int = 64

    @property
    def dsn(self) -> str:
        return self.clickhouse_url or f"chdb://{self.data_dir.resolve()}"

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb:")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def get(name: str, default: str = "") -> str:
            return env.get(PREFIX + name, default).strip()

        database = get("DATABASE", "sematic_metrics")
        if not _IDENTIFIER.match(database):
            raise ConfigError(
                f"{PREFIX}DATABASE={database!r} is not a plain identifier; "
                "use letters, digits and underscores only."
            )
        cluster = get("CLICKHOUSE_CLUSTER") or None
        if cluster is not None and not _IDENTIFIER.match(cluster):
            raise ConfigError(f"{PREFIX}CLICKHOUSE_CLUSTER={cluster!r} is not a plain identifier.")
        ttl = get("TTL_DAYS")
        return cls(
            data_dir=Path(get("DATA_DIR", "data")),
            clickhouse_url=get("CLICKHOUSE_URL"),
            database=database,
            api_keys=parse_api_keys(get("API_KEYS")),
            max_body_bytes=_int(env, "MAX_BODY_BYTES", 32 * 1024 * 1024, minimum=1024),
            body_timeout_s=_float(env, "BODY_TIMEOUT_S", 30.0),
            ttl_days=_int(env, "TTL_DAYS", 0, minimum=1) if ttl else None,
            host=get("HOST", "127.0.0.1"),
            port=_int(env, "PORT", 8000, minimum=0),
            commit_max_points=_int(env, "COMMIT_MAX_POINTS", 1_000_000, minimum=1),
            read_pool_size=_int(env, "READ_POOL_SIZE", 4, minimum=1),
            cluster=cluster,
            sematic_upstream=parse_upstream(get("SEMATIC_UPSTREAM")),
            series_cache_mb=_int(env, "SERIES_CACHE_MB", 64, minimum=0),
        )


def parse_upstream(raw: str) -> str | None:
    """The Sematic server to front: an http(s) URL without query or fragment, or None."""
    raw = raw.strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            f"{PREFIX}SEMATIC_UPSTREAM={raw[:200]!r} is not an http(s) URL of a Sematic server; "
            "write it like http://sematic.example.com:5001"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ConfigError(f"{PREFIX}SEMATIC_UPSTREAM={raw[:200]!r} has an invalid port.") from None
    return raw.rstrip("/")


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Parse ``name=key[:scope+scope],...``; a key without scopes gets all of them."""
    keys: list[ApiKey] = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        name, sep, rest = item.partition("=")
        key, _, scope_text = rest.partition(":")
        if not sep or not name.strip() or not key.strip():
            raise ConfigError(
                f"{PREFIX}API_KEYS entry {item.split('=')[0]!r}... is malformed; "
                "write name=key or name=key:read+write, comma separated."
            )
        scopes = frozenset(s.strip() for s in scope_text.split("+") if s.strip()) or frozenset(SCOPES)
        unknown = scopes - set(SCOPES)
        if unknown:
            raise ConfigError(
                f"{PREFIX}API_KEYS entry {name!r} has unknown scopes {sorted(unknown)}; "
                f"allowed: {', '.join(SCOPES)}."
            )
        keys.append(ApiKey(name.strip(), key.strip(), scopes))
    return tuple(keys)


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(PREFIX + name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={raw!r} is not an integer.") from None
    if value < minimum:
        raise ConfigError(f"{PREFIX}{name}={value} is below the minimum of {minimum}.")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(PREFIX + name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{PREFIX}{name}={raw!r} is not a number.") from None
    if not value > 0:
        raise ConfigError(f"{PREFIX}{name}={raw!r} must be a positive number.")
    return value
