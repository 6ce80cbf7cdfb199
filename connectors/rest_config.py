"""A ``kind: rest`` source's configuration: its options checked, its secrets read only from its Airflow Connection."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from connectors.config import SourceConfig
from connectors.credentials import connection_uri
from connectors.rest import Paging, RestConnector
from hub.errors import ConfigError

PAGING_OPTIONS = ("page_param", "size_param", "items_field", "total_field", "cursor_param", "next_cursor_field",
                  "limit_param", "error_fields")
OPTIONS = frozenset({"path", "pagination", *PAGING_OPTIONS, "since_param", "page_size", "params", "auth", "key_id",
                     "timeout", "max_retries", "backoff", "max_wait", "rate_limit", "burst", "schema"})
SECRET_OPTIONS = frozenset({"token", "password", "api_key", "secret", "private_key", "private_key_file"})
DEFAULT_PAGE_SIZE = 1000  # APIs cap their pages; the configured batch_size is sized for databases


def connection_fields(conn_id: str) -> dict[str, Any]:
    """Host, port, schema, login, password and extra of an Airflow Connection, from its URI or JSON form."""
    text = connection_uri(conn_id)
    if text.lstrip().startswith("{"):
        raw = json.loads(text)
        extra = raw.get("extra") or {}
        return {**raw, "extra": json.loads(extra) if isinstance(extra, str) else extra}
    parts = urlsplit(text)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    return {
        "conn_type": parts.scheme, "host": unquote(parts.hostname or ""), "port": parts.port,
        "schema": unquote(parts.path.lstrip("/")), "login": unquote(parts.username or "") or None,
        "password": unquote(parts.password or "") or None,
        "extra": json.loads(query["__extra__"]) if "__extra__" in query else query,
    }


def _base_url(conn: Mapping[str, Any]) -> str:
    # As Airflow's HttpHook reads an HTTP connection: a host with a scheme is taken whole, else schema is the protocol.
    host = conn["host"]
    if "://" not in host:
        scheme = conn.get("schema") if conn.get("schema") in ("http", "https") else (
            "https" if conn.get("conn_type") == "https" else "http")
        host = f"{scheme}://{host}"
    return f"{host}:{conn['port']}" if conn.get("port") else host


def from_config(source: SourceConfig, samples_dir: Path) -> RestConnector:
    """The connector of a ``kind: rest`` source; the token or signing key comes only from its Connection."""
    opts = dict(source.options)
    where = f"source {source.name!r}"
    problems = [f"{where}: option {n!r} is a secret; put it in the connection, never in the YAML"
                for n in sorted(opts.keys() & SECRET_OPTIONS)]
    problems += [f"{where}: unknown option {n!r}" for n in sorted(opts.keys() - OPTIONS - SECRET_OPTIONS)]
    if problems:
        raise ConfigError(problems)
    auth = opts.get("auth", "none")
    conn: dict[str, Any] = {}
    if source.connection:
        try:
            conn = connection_fields(source.connection)
        except ConfigError:
            if auth != "none" or not source.url:  # without secrets to fetch, the embedded URL will do
                raise
    extra = conn.get("extra") or {}
    token = signing_key = None
    key_id = opts.get("key_id") or extra.get("key_id") or conn.get("login")
    if auth == "bearer":
        token = conn.get("password")
    elif auth == "signed":
        signing_key = extra.get("private_key")
        if not signing_key and extra.get("private_key_file"):
            try:
                signing_key = Path(extra["private_key_file"]).read_bytes()
            except OSError as exc:
                raise ConfigError(f"{where}: cannot read the signing key {extra['private_key_file']}: {exc}") from exc
    if auth != "none" and not (token or signing_key):
        raise ConfigError(f"{where}: {auth} auth needs connection {source.connection!r} with "
                          + ("a password (the token)" if auth == "bearer" else "extra private_key or private_key_file"))
    base_url = _base_url(conn) if conn.get("host") else source.location(samples_dir)
    if not base_url:
        raise ConfigError(f"{where}: needs a url or a connection with a host")
    if isinstance(opts.get("error_fields"), (list, str)):  # a list in YAML (or one name); kept as a tuple
        opts["error_fields"] = (opts["error_fields"],) if isinstance(opts["error_fields"], str) else tuple(opts["error_fields"])
    paging = Paging(style=opts.get("pagination", "page"), **{n: opts[n] for n in PAGING_OPTIONS if n in opts})
    limits = source.limits
    return RestConnector(
        base_url, path=opts.get("path", ""), pagination=paging, key=source.key, watermark=source.watermark,
        batch_size=int(opts.get("page_size", min(source.batch_size, DEFAULT_PAGE_SIZE))), auth=auth, token=token,
        signing_key=signing_key, key_id=key_id, timeout=float(opts.get("timeout", 30.0)),
        max_retries=int(opts.get("max_retries", 5)), rate_limit=opts.get("rate_limit"), schema=opts.get("schema"),
        since_param=opts.get("since_param"), columns=source.columns,
        params=opts.get("params"), backoff=float(opts.get("backoff", 0.5)), max_wait=float(opts.get("max_wait", 60.0)),
        burst=float(opts.get("burst", 1.0)), name=source.name, deadline=limits.deadline_seconds,
        max_page_items=limits.max_page_items, max_page_bytes=limits.max_page_bytes,
    )
