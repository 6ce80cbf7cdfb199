"""REST APIs: paginated JSON (page, offset or cursor), incremental by (watermark field, key), retried and rate-limited.

The watermark is a JSON text ``{"w": <greatest watermark value>, "k": <its key>, "cursor": <resume cursor>}``;
``w``/``k`` only when a watermark field is configured, ``cursor`` only in cursor style. Numbers in it,
as in the landed values, are kept exactly as the source wrote them. How JSON values land and drift is
checked lives in :mod:`connectors.rest_json`; reading a source's options and Connection in
:mod:`connectors.rest_config`.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import random
import re
import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pyarrow as pa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver
from http_message_signatures.algorithms import ED25519

from connectors.base import Connector, Extraction
from connectors.config import SourceLimits
from connectors.rest_json import ABSENT, Shape, compact_json, dig, loads_exact, sort_key, text_column
from hub.errors import ConfigError, SchemaDrift, SourceError, SourceUnavailable
from hub.masking import mask_id
from hub.rate_limit import TokenBucket

STYLES = ("page", "offset", "cursor")
AUTHS = ("none", "bearer", "signed")
JSON_TYPES = ("string", "number", "integer", "boolean", "object", "array", "null")
SIGNATURE_LABEL = "hub"
SIGNED_COMPONENTS = ("@method", "@target-uri")  # Content-Digest of the (empty) body is added by the signer
LIMITS = SourceLimits()  # the defaults of what one extraction may cost
SHOWN_BYTES = 4096  # of an answer that is not a page: enough for its message
# Resident ID numbers (18 or old 15 digits) an API may echo in its error text: masked before they reach a log.
_ID_LIKE = re.compile(r"(?<![0-9])(?:[0-9]{17}[0-9Xx]|[0-9]{15})(?![0-9Xx])")


def _masked(text: str) -> str:
    """Source text for an error message: ID numbers in it masked, at most 200 characters."""
    return _ID_LIKE.sub(lambda m: mask_id(m.group()), text)[:200]


def _short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:37] + "...")


@dataclass(frozen=True)
class Paging:
    """How the API pages: query parameter names and where the answer keeps items, total and next cursor."""

    style: str = "page"  # page: page=1,2,..; offset: page_param is a row offset; cursor: next_cursor_field
    page_param: str | None = None  # "page", or "offset" in offset style
    size_param: str = "size"
    items_field: str = "items"
    total_field: str | None = "total"
    cursor_param: str = "cursor"
    next_cursor_field: str = "next_cursor"
    limit_param: str = "limit"
    error_fields: tuple[str, ...] = ("error", "errors")  # a 200 carrying one of these and no items is an error


class _TooSlow(Exception):
    """One request took longer than its time limit, however steadily its bytes came."""


def _retry_after(value: str | None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds())


@dataclass
class _Signable:
    """The view of an httpx request the signature library reads and adds headers to."""

    method: str
    url: str
    headers: httpx.Headers


def load_signing_key(pem: bytes | str) -> Ed25519PrivateKey:
    """An Ed25519 private key from unencrypted PKCS#8 PEM; ConfigError otherwise."""
    try:
        key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the signing key is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError("the signing key must be Ed25519")
    return key


class RestConnector(Connector):
    """A paginated JSON collection; one Arrow batch per page, every column a string."""

    kind = "rest"

    def __init__(self, base_url: str, *, path: str = "", pagination: Paging | str = "page", key: str,
                 watermark: str | None = None, batch_size: int = 1000, auth: str = "none", token: str | None = None,
                 signing_key: Ed25519PrivateKey | bytes | str | None = None, key_id: str | None = None,
                 timeout: float = 30.0, max_retries: int = 5, rate_limit: float | None = None,
                 schema: Mapping[str, str] | None = None, since_param: str | None = None,
                 columns: list[str] | None = None, params: Mapping[str, str] | None = None,
                 backoff: float = 0.5, max_wait: float = 60.0, burst: float = 1.0, name: str | None = None,
                 deadline: float = LIMITS.deadline_seconds, max_page_items: int | None = None,
                 max_page_bytes: int = LIMITS.max_page_bytes):
        self.paging = Paging(style=pagination) if isinstance(pagination, str) else pagination
        problems = _problems(self.paging, auth, token, signing_key, key_id, schema, batch_size, max_retries, rate_limit)
        if not (deadline > 0 and timeout > 0 and max_page_bytes >= 1 and (max_page_items or 1) >= 1):
            problems.append("deadline and timeout must be > 0, max_page_items and max_page_bytes >= 1")
        if problems:
            raise ConfigError([f"rest source {name or base_url}: {p}" for p in problems])
        self.path, self.key, self.watermark_field = path, key, watermark
        self.batch_size, self.max_retries, self.timeout = batch_size, max_retries, timeout
        # Unset, a page may hold what was asked for: more means the API ignores its size parameter.
        self.deadline, self.max_page_items, self.max_page_bytes = deadline, max_page_items or batch_size, max_page_bytes
        self._deadline_at = float("inf")  # set when an extraction starts pulling
        self.backoff, self.max_wait = backoff, max_wait
        self.schema, self.since_param, self.params = dict(schema) if schema else None, since_param, dict(params or {})
        self.columns = list(dict.fromkeys([key, *([watermark] if watermark else []), *columns])) if columns else None
        self.label = f"source {name!r}" if name else f"rest source {httpx.URL(base_url).netloc.decode()}"
        self.auth, self.key_id = auth, key_id
        if auth == "signed":
            private = signing_key if isinstance(signing_key, Ed25519PrivateKey) else load_signing_key(signing_key or "")
            keys = MappingKeyResolver(public_keys={}, private_keys={key_id: private})
            self._signer = HTTPMessageSigner(signature_algorithm=ED25519, key_resolver=keys)
        headers = {"Accept": "application/json"}
        if auth == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        # No redirects: a signature covers the target URI, and a token must not follow a redirect elsewhere.
        self._http = httpx.Client(base_url=base_url, timeout=timeout, headers=headers, follow_redirects=False)
        self._bucket = TokenBucket(rate_limit, burst) if rate_limit else None

    def extract(self, since: str | None, *, full: bool = False) -> Extraction:
        """Records changed after the watermark ``since`` (all when ``full``), one batch per page."""
        extraction = Extraction(batches=iter(()), since=None if full else since, watermark=since)
        extraction.batches = self._batches(extraction)
        return extraction

    def close(self) -> None:
        self._http.close()

    def _batches(self, extraction: Extraction) -> Iterator[pa.RecordBatch]:
        mark = self._read_mark(extraction.since)
        best = (mark["w"], mark["k"]) if "w" in mark else None
        after = (sort_key(best[0]), sort_key(best[1])) if best else None
        paging, shape = self.paging, Shape(self.schema, self.columns)
        query: dict[str, Any] = dict(self.params)
        cursor = mark.get("cursor") if paging.style == "cursor" else None
        if self.since_param and best and not cursor:
            query[self.since_param] = best[0] if type(best[0]) is str else compact_json(best[0])
        page, received, columns, first_key = 1, 0, self.columns, None
        # Loop detection: the page each cursor was followed from, and the page each set of records came on.
        followed: dict[str, int] = {cursor: 0} if cursor else {}
        pages_seen: dict[bytes, int] = {}
        self._deadline_at = time.monotonic() + self.deadline
        while True:
            if paging.style == "cursor":
                query[paging.limit_param] = self.batch_size
                if cursor:
                    query.pop(self.since_param or "", None)  # the cursor already carries the position
                    query[paging.cursor_param] = cursor
            else:
                query[paging.page_param or paging.style] = page if paging.style == "page" else received
                query[paging.size_param] = self.batch_size
            where = f"{self.label}: GET {self.path} page {page}"
            body = self._get(query, where)
            items = dig(body, paging.items_field)
            self._check_error(body, items, where)
            if not isinstance(items, list):
                raise SchemaDrift(f"{where}: the answer has no {paging.items_field!r} list")
            if not items:
                return
            if len(items) > self.max_page_items:
                raise SourceError(f"{where} holds {len(items)} items, more than limits.max_page_items "
                                  f"({self.max_page_items}; {self.batch_size} were asked for): raise it if the API's "
                                  "pages are fixed at that size")
            # Checked before anything of this page is yielded: a drifting page must never be half landed.
            shape.check(items, where)
            head = items[0].get(self.key)
            if paging.style != "cursor" and head is not None and head == first_key:
                raise SourceError(f"{where}: the API answered the previous page again "
                                  f"(is {paging.page_param or paging.style!r} its page parameter?)")
            first_key = head
            digest = self._records_digest(items)
            if digest in pages_seen:
                raise SourceError(f"{where} holds the same records as page {pages_seen[digest]}: the API's pages loop")
            pages_seen[digest] = page
            if columns is None:
                columns = list(dict.fromkeys([self.key, *([self.watermark_field] if self.watermark_field else []),
                                              *(self.schema or shape.allowed)]))
            received += len(items)
            fresh = items
            if self.watermark_field:
                fresh, best = self._after(items, after, best)
            if fresh:
                yield pa.RecordBatch.from_arrays([text_column(fresh, c) for c in columns], names=columns)
            # Advanced only after the batch was consumed: a consumer that stops early keeps the old mark.
            if paging.style == "cursor":
                following = dig(body, paging.next_cursor_field)
                following = following if isinstance(following, str) and following else None
                if following is not None and following == cursor:
                    raise SourceError(f"{where}: the next cursor does not advance")
                if following is not None and following in followed:
                    raise SourceError(f"{where}: the next cursor {_short(following)} was already followed at page "
                                      f"{followed[following] + 1}: the API's cursors loop")
                # At the end there is no next cursor: resume from this page's; the (w, k) filter drops its replay.
                extraction.watermark = self._mark(best, following or cursor) or extraction.watermark
                if following is None:
                    return
                followed[following] = page
                cursor = following
            else:
                extraction.watermark = self._mark(best, None) or extraction.watermark
                total = dig(body, paging.total_field) if paging.total_field else None
                if type(total) is int and received >= total:
                    return
            page += 1

    def _records_digest(self, items: list[dict]) -> bytes:
        """What identifies a page's records: their keys (a keyless record by all of it), in order."""
        digest = hashlib.blake2b(digest_size=16)
        for item in items:
            key = item.get(self.key)
            digest.update((compact_json(key) if key is not None else compact_json(item)).encode() + b"\x1f")
        return digest.digest()

    def _check_error(self, body: Any, items: Any, where: str) -> None:
        """SourceError when a 200 answer carries an error and no items: it is a failure, not an empty page."""
        if isinstance(items, list) and items:
            return
        for name in self.paging.error_fields:
            error = dig(body, name)
            if error not in (ABSENT, None, False, "", [], {}):
                text = error if isinstance(error, str) else compact_json(error)
                raise SourceError(f"{where}: the API answered 200 with an error and no items: {name} = {_masked(text)}")

    def _after(self, items: list[dict], after: tuple | None, best: tuple | None) -> tuple[list[dict], tuple | None]:
        """The items past the old mark ``after``, and the greatest (watermark, key) seen so far."""
        w, k = self.watermark_field, self.key
        fresh = []
        top = (sort_key(best[0]), sort_key(best[1])) if best else None
        for item in items:
            if item.get(w) is None or item.get(k) is None:
                fresh.append(item)  # landed for the quality gate to judge, but no position to remember
                continue
            rank = (sort_key(item[w]), sort_key(item[k]))
            if after is not None and rank <= after:
                continue  # a since filter is usually inclusive, and a resumed cursor replays its page
            fresh.append(item)
            if top is None or rank > top:
                top, best = rank, (item[w], item[k])
        return fresh, best

    def _mark(self, best: tuple | None, cursor: str | None) -> str | None:
        parts: dict[str, Any] = {"w": best[0], "k": best[1]} if best else {}
        if cursor:
            parts["cursor"] = cursor
        return compact_json(parts) if parts else None

    def _read_mark(self, since: str | None) -> dict[str, Any]:
        if not since:
            return {}
        try:
            mark = loads_exact(since)
        except ValueError:
            mark = None
        if not isinstance(mark, dict) or ("w" in mark) != ("k" in mark):
            raise SourceError(f"{self.label}: unreadable watermark {since!r}")
        if "w" in mark and not self.watermark_field:
            mark = {n: v for n, v in mark.items() if n == "cursor"}
        return mark

    def _get(self, query: dict[str, Any], where: str) -> Any:
        """The JSON answer to GET ``path?query``, retried with backoff on 429, 5xx, timeouts and lost connections."""
        attempts, problem = self.max_retries + 1, ""
        for attempt in range(attempts):
            if self._bucket is not None and (wait := self._bucket.reserve()):
                time.sleep(wait)
            self._check_deadline(where, problem)
            retry_after = None
            try:
                response, content = self._fetch(self._request(query), where)
            except (httpx.TimeoutException, _TooSlow) as exc:
                problem = f"timed out after {self.timeout:g} s ({type(exc).__name__})"
            except (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            except httpx.TransportError as exc:  # a bad URL or protocol: no retry will help
                raise SourceError(f"{self.label}: GET {self.path} failed: {type(exc).__name__}: {exc}") from exc
            else:
                status = response.status_code
                if status != 429 and status < 500:
                    return self._body(response, content)
                problem, retry_after = f"HTTP {status}", _retry_after(response.headers.get("retry-after"))
            if attempt + 1 < attempts:
                wait = self._wait(attempt, retry_after, problem)
                self._check_deadline(where, problem, after=wait)
                time.sleep(wait)
        raise SourceUnavailable(f"{self.label}: GET {self.path} failed after {attempts} attempt(s); last: {problem}")

    def _check_deadline(self, where: str, problem: str = "", after: float = 0.0) -> None:
        """SourceError once the extraction would run past its deadline (``after`` seconds from now)."""
        if time.monotonic() + after < self._deadline_at:
            return
        # Not SourceUnavailable: a source that loops or trickles does the same on the retry of the task.
        raise SourceError(f"{where}: the extraction ran into its deadline of {self.deadline:g} s (limits.deadline_seconds)"
                          + (f"; last problem: {problem}" if problem else "")
                          + "; nothing of it is kept: raise the deadline if the source is only slow")

    def _fetch(self, request: httpx.Request, where: str) -> tuple[httpx.Response, bytes]:
        """The answer and its body, read within the request's time limit, the deadline and max_page_bytes."""
        started = time.monotonic()
        # A single read waits no longer than the whole request may take, nor past the deadline.
        wait = max(0.001, min(self.timeout, self._deadline_at - started))
        request.extensions["timeout"] = httpx.Timeout(wait).as_dict()
        response = self._http.send(request, stream=True)
        try:
            page = response.status_code == 200
            limit = self.max_page_bytes if page else SHOWN_BYTES
            declared = response.headers.get("content-length", "")
            if page and declared.isdigit() and int(declared) > limit:
                raise SourceError(f"{where}: the answer declares {declared} bytes, more than limits.max_page_bytes "
                                  f"({limit})")
            body, size = bytearray(), 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    if not page:  # only its start is shown
                        body += chunk[:limit - len(body)]
                        break
                    raise SourceError(f"{where}: the answer runs to more than limits.max_page_bytes ({limit}) "
                                      "and was cut off there")
                body += chunk
                now = time.monotonic()
                if now >= self._deadline_at:
                    self._check_deadline(where, "the answer was still arriving")
                if now - started > self.timeout:  # bytes trickling in never trip a read timeout
                    raise _TooSlow(f"the answer was still arriving after {self.timeout:g} s")
            return response, bytes(body)
        finally:
            response.close()

    def _wait(self, attempt: int, retry_after: float | None, problem: str) -> float:
        # Full-size exponential steps with jitter, so many workers retrying one source do not stampede it.
        wait = min(self.max_wait, self.backoff * 2 ** attempt) * random.uniform(0.5, 1.0)
        if retry_after is None:
            return wait
        if retry_after > self.max_wait:
            raise SourceUnavailable(f"{self.label}: GET {self.path} {problem} asks to wait {retry_after:g} s "
                                    f"(Retry-After), more than max_wait {self.max_wait:g} s")
        return max(retry_after, wait)

    def _request(self, query: dict[str, Any]) -> httpx.Request:
        request = self._http.build_request("GET", self.path, params=query)
        if self.auth == "signed":
            # Signed per attempt: a retry gets a fresh nonce and created time, so replay protection accepts it.
            self._signer.sign(_Signable(request.method, str(request.url), request.headers), key_id=self.key_id or "",
                              created=dt.datetime.now(dt.UTC), nonce=secrets.token_urlsafe(24), label=SIGNATURE_LABEL,
                              covered_component_ids=SIGNED_COMPONENTS, body=b"")
        return request

    def _body(self, response: httpx.Response, content: bytes) -> Any:
        where = f"{self.label}: GET {response.request.url.path}"
        if response.status_code in (401, 403):
            raise SourceError(f"{where} refused our credentials (HTTP {response.status_code}, auth {self.auth})")
        if response.status_code != 200:
            text = content.decode(response.encoding or "utf-8", "replace")
            raise SourceError(f"{where} answered HTTP {response.status_code}: {_masked(text)}")
        try:
            return loads_exact(content)
        except ValueError as exc:
            raise SourceError(f"{where} answered something that is not JSON: {exc}") from None


def _problems(paging: Paging, auth: str, token: str | None, signing_key: object, key_id: str | None,
              schema: Mapping[str, str] | None, batch_size: int, max_retries: int,
              rate_limit: float | None) -> list[str]:
    """Every problem of a connector's settings, so one ConfigError lists them all."""
    problems = []
    if paging.style not in STYLES:
        problems.append(f"pagination {paging.style!r} is not one of {', '.join(STYLES)}")
    if auth not in AUTHS:
        problems.append(f"auth {auth!r} is not one of {', '.join(AUTHS)}")
    if auth == "bearer" and not token:
        problems.append("bearer auth needs a token (the connection's password)")
    if auth == "signed" and not (signing_key and key_id):
        problems.append("signed auth needs an Ed25519 private key and a key id")
    for name, spec in (schema or {}).items():
        if not isinstance(spec, str) or not set(spec.split("-or-")) <= set(JSON_TYPES):
            problems.append(f"schema type {spec!r} of field {name!r} is not one of {'/'.join(JSON_TYPES)} "
                            "(or 'a-or-b')")
    if batch_size < 1 or max_retries < 0 or (rate_limit is not None and rate_limit <= 0):
        problems.append("batch_size must be >= 1, max_retries >= 0 and rate_limit > 0")
    return problems
