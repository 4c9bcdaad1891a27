"""What stands in front of central's HTTP API, before FastAPI parses anything.

Anyone who can reach central can call ``POST /api/v1/enrol`` (its one-time token is
the credential), and central's batch ingest shares the process. So what a stranger
can make central hold, wait for or compute is bounded here:

- `EnrolRateLimit`: a token bucket per source address for the enrolment route; an
  empty bucket is a 429 with ``Retry-After``, answered before the body is read. The
  buckets live in memory, at most `HttpLimits.max_sources` of them.
- `BodyLimit`: a body over its route's limit (a few KiB for enrolment) is a 413 —
  from its ``Content-Length`` before a byte of it is read, or, sent chunked, as soon
  as what was read passes the limit — and a body that takes longer than
  `HttpLimits.body_timeout_s` to arrive is a 408. Both answers close the connection,
  so the rest of a large body is never read. Only a body within its limit reaches
  FastAPI, in one piece.
- `validation_problem`: FastAPI's own 422 echoes the input back (``input``,
  ``ctx``); this one says which field is wrong and why, never what was sent. A body
  that is not JSON is a 400, as the API documents.
- `thread_limit`: the endpoints are synchronous and run in a thread pool, each thread
  holding a database connection while it works; fewer threads than the database
  pool has connections leave the MQTT ingest thread one whatever the API is asked.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from greenpass.errors import ConfigError

ENROL_PATH = "/api/v1/enrol"
RULES_FORM = re.compile(r"/villages/[^/]+/rules/(preview|apply)")
PICTURE_FORM = re.compile(r"/villages/[^/]+/catalogue/[^/]+/picture")
UNKNOWN_FIELD = "(unknown field)"
_MAX_LOC_PART = 64  # characters of a location part shown; ours are all shorter


@dataclass(frozen=True)
class HttpLimits:
    """The bounds on what one request, and one source address, can make central do."""

    enrol_body_bytes: int = 4 * 1024  # an enrolment is about 200 bytes of JSON
    body_bytes: int = 16 * 1024  # any other route: the admin bodies are as small
    # The console's rules upload: a whole rules file, percent-encoded (up to 3× its size).
    rules_form_bytes: int = 128 * 1024
    # The console's item picture upload: a phone photo (central.catalogue_file's source
    # limit, 10 MiB) in a multipart form; central keeps only a 96-pixel thumbnail of it.
    picture_form_bytes: int = 10 * 1024 * 1024 + 64 * 1024
    body_timeout_s: float = 10.0  # from the request's headers to the end of its body
    enrol_per_minute: int = 10  # enrolment attempts per source address, also the burst
    max_sources: int = 10_000  # source addresses with a bucket (about 2 MB at most)
    threads: int = 8  # endpoint threads; fewer than the database pool's 15 connections

    def __post_init__(self) -> None:
        for name in (
            "enrol_body_bytes",
            "body_bytes",
            "rules_form_bytes",
            "picture_form_bytes",
            "enrol_per_minute",
            "max_sources",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1", key=name)
        if not 1 <= self.threads <= 64:
            raise ConfigError("threads must be 1 to 64", key="threads")
        if self.body_timeout_s <= 0:
            raise ConfigError("body_timeout_s must be positive", key="body_timeout_s")

    def body_limit(self, path: str) -> int:
        if _is_enrol(path):
            return self.enrol_body_bytes
        if RULES_FORM.fullmatch(path):
            return self.rules_form_bytes
        return self.picture_form_bytes if PICTURE_FORM.fullmatch(path) else self.body_bytes


def _is_enrol(path: str) -> bool:
    # A trailing slash only gets a redirect from FastAPI, but it is counted all the same.
    return path.rstrip("/") == ENROL_PATH


async def refuse(
    send: Send, status: int, detail: str, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """A JSON ``{"detail": …}`` answer that closes the connection: whatever is left of
    the request's body is then never read (uvicorn closes after ``Connection: close``)."""
    body = json.dumps({"detail": detail}, separators=(",", ":")).encode()  # as JSONResponse
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# --- body size and time ------------------------------------------------------------------


class BodyLimit:
    """Reads each request's body, up to its route's limit and within the time limit,
    before the app sees the request (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.body_limit(scope["path"])
        try:
            declared = _content_length(scope)
        except ValueError:
            await refuse(send, 400, "the Content-Length header is not a number")
            return
        if declared is not None and declared > limit:
            await refuse(send, 413, f"the request body is over {limit} bytes")
            return
        try:
            with anyio.fail_after(self.limits.body_timeout_s):
                body = await _read_body(receive, limit)
        except TimeoutError:
            await refuse(send, 408, f"the request body took over {self.limits.body_timeout_s:g} s")
            return
        except _ClientGone:
            return  # nobody to answer
        if body is None:
            await refuse(send, 413, f"the request body is over {limit} bytes")
            return
        await self.app(scope, _replay(body, receive), send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            if not value.strip().isdigit():
                raise ValueError(value)
            return int(value)
    return None


class _ClientGone(Exception):
    """The client disconnected while sending its body."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes (the rest is left unread)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, as one message; then the server's own (a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


# --- enrolment attempts per source --------------------------------------------------------


class SourceBuckets:
    """A token bucket per source address: `per_minute` attempts in a burst, refilled
    evenly over a minute. At most `max_sources` are kept, the least recently seen
    dropped first; a dropped source had not tried for the longest, so its bucket was
    the fullest anyway."""

    def __init__(
        self, per_minute: int, max_sources: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0  # tokens per second
        self.max_sources = max_sources
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}  # source → (tokens, at); LRU order

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, source: str) -> float:
        """Spend one attempt for `source`: 0.0 when allowed, else the seconds until it is."""
        now = self.clock()
        tokens, at = self._buckets.pop(source, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self.rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / self.rate
        self._buckets[source] = (tokens, now)  # re-inserted: now the most recent
        while len(self._buckets) > self.max_sources:
            del self._buckets[next(iter(self._buckets))]
        return wait


def source_of(scope: Scope) -> str:
    """Whom to count an attempt against: the client's address, IPv6 by its /64 (one
    subscriber gets a whole /64, so single addresses would cost an attacker nothing)."""
    client = scope.get("client")
    host = str(client[0]) if client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host  # a Unix socket or a test client: no address to group by
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class EnrolRateLimit:
    """429 for a source address that has used up its enrolment attempts."""

    def __init__(
        self, app: ASGIApp, *, limits: HttpLimits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.app = app
        self.buckets = SourceBuckets(limits.enrol_per_minute, limits.max_sources, clock)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and _is_enrol(scope["path"]):
            wait = self.buckets.take(source_of(scope))
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                await refuse(
                    send,
                    429,
                    f"too many enrolment attempts from this address; try again in {seconds} s",
                    [(b"retry-after", str(seconds).encode())],
                )
                return
        await self.app(scope, receive, send)


# --- validation errors, threads -------------------------------------------------------------


async def validation_problem(_request: Request, exc: Exception) -> JSONResponse:
    """400 for a body that is not JSON; else 422 with each problem's location, message
    and type — never the input, which FastAPI's own answer repeats in full."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    if any(e.get("type") == "json_invalid" for e in errors):
        return JSONResponse({"detail": "the body is not JSON"}, status_code=400)
    return JSONResponse({"detail": [_problem(e) for e in errors]}, status_code=422)


def _problem(error: Any) -> dict[str, Any]:
    loc: list[str | int] = [
        p if isinstance(p, int) else str(p)[:_MAX_LOC_PART] for p in error.get("loc", ())
    ]
    if error.get("type") == "extra_forbidden" and loc:
        loc[-1] = UNKNOWN_FIELD  # the name is the sender's, not ours: not repeated
    # pydantic's messages name what was expected, not what was given.
    return {"loc": loc, "msg": str(error.get("msg", ""))[:200], "type": str(error.get("type", ""))}


def thread_limit(threads: int) -> Callable[[FastAPI], Any]:
    """A lifespan that caps the endpoint thread pool of the app's event loop."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield

    return lifespan


def guard(app: FastAPI, limits: HttpLimits) -> None:
    """Install the body limit, the enrolment rate limit (outermost: an address that
    is over its limit is answered before its body is read) and the 422 handler."""
    app.add_exception_handler(RequestValidationError, validation_problem)
    app.add_middleware(BodyLimit, limits=limits)
    app.add_middleware(EnrolRateLimit, limits=limits)
