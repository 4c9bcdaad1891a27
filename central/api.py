"""Central's HTTP API (FastAPI): the operator's admin endpoints and kiosk enrolment.

Everything lives under ``/api/v1/``; the OpenAPI document is ``/openapi.json``.

    admin (``Authorization: Bearer <admin token>``)
        GET  /api/v1/devices                          the fleet, with each kiosk's status
        POST /api/v1/devices/{device_id}/revoke
        POST /api/v1/enrol-tokens                     a one-time enrolment token
        GET  /api/v1/villages/{village_id}/totals     grams per category, points, CO2e
        GET  /api/v1/villages/{village_id}/overdrafts
        GET  /api/v1/villages/{village_id}/double-reversals
        GET  /api/v1/villages/{village_id}/export.csv every entry of the village (raw)
        GET  …/totals.{csv,xlsx}, …/entries.{csv,xlsx}, /passbooks/{id}/statement.{csv,xlsx}
                                                      for people (central.api_exports)
        GET  /api/v1/passbooks/{passbook_id}/statement
        GET  /api/v1/dead-letters?limit=N
    public (no login)
        GET  /s/{token}                               a villager's statement page, by the
                                                      signed link in a QR (central.api_statement)
    kiosk (the one-time token is the credential)
        POST /api/v1/enrol

Quantities are integers: grams, points, grams CO2e, milliseconds since the epoch.
Errors are ``{"detail": "..."}``: 400 for a body that is not JSON, 401 without the
admin token, 403 for a refused enrolment, 404 for an unknown village, passbook or
device, 408/413 for a body too slow or too large, 409 when a token cannot be issued,
422 for malformed input (which field and why, never the input), 429 for too many
enrolment attempts from one address, 503 when the database cannot be reached (or a
revocation could not be passed on to the broker). The limits behind 408, 413 and 429
are `central.http_guard`'s, applied before FastAPI parses anything.

The store is synchronous, so the endpoints are plain ``def``: FastAPI runs them in
its thread pool, and `CentralStore` takes a pooled connection per call. The request
and response bodies are in `central.api_models`.
"""

import csv
import io
import itertools
import logging
import pathlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
)
from fastapi.responses import JSONResponse, StreamingResponse

from central import exports, reports
from central.api_exports import FromDate, ToDate, export_router, period_of
from central.api_log import log_router
from central.api_models import (
    DEVICE_ID_PATTERN,
    ID_PATTERN,
    DeadLetterOut,
    DeviceOut,
    DoubleReversalOut,
    EnrolIn,
    EnrolOut,
    EnrolTokenIn,
    EnrolTokenOut,
    OverdraftOut,
    Problem,
    StatementOut,
    VillageTotalsOut,
)
from central.api_operator import operator_router
from central.api_registry import registry_router
from central.api_registry_ops import registry_ops_router
from central.api_statement import statement_router
from central.auth import FORBIDDEN, Actor, Auth, CurrentActor, current_actor, require_county
from central.auth import require_village as may_see
from central.console import ConsoleSettings
from central.console import install as install_console
from central.dynsec import device_password
from central.http_guard import HttpLimits, guard, thread_limit
from central.rabbit_login import rabbit_login_router
from central.registry_desk import RegistryDesk
from central.store import CentralStore, Device
from greenpass.errors import CentralError, ConfigError, StorageError
from greenpass.record.methodology import Methodology, default_methodology
from sync.keys import Ed25519PrivateKey

log = logging.getLogger(__name__)

API_TITLE = "Green Passbook central"
API_VERSION = "1"
PREFIX = "/api/v1"
MIN_ADMIN_TOKEN = 16
CSV_ROWS_PER_CHUNK = 500
NO_VILLAGE = "No such village"


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class EnrolmentSettings:
    """What every enrolled kiosk is told: where the broker is, which CA signs its TLS
    certificate (PEM), and central's raw Ed25519 public key for the signed state."""

    broker_url: str
    ca_cert_pem: str
    central_public_key: bytes
    # What the kiosk speaks to that broker: "5" (Mosquitto), "3.1.1" (a RabbitMQ
    # cluster's MQTT plugin; `greenpass central --amqp`).
    mqtt_version: str = "5"
    # Central's broker secret: each device's MQTT password is derived from it
    # (`central.dynsec.device_password`), so the broker's login can always be remade.
    broker_secret: bytes | None = None

    def __post_init__(self) -> None:
        if len(self.central_public_key) != 32:
            raise ConfigError(
                f"central's public key has {len(self.central_public_key)} bytes, not 32",
                key="central_public_key",
            )
        if not self.broker_url:
            raise ConfigError("kiosks need a broker URL to sync to", key="broker_url")


# --- the app ------------------------------------------------------------------------------


_PROBLEMS = {
    400: "The body is not JSON",
    401: "No or wrong admin token",
    403: "Enrolment refused: token unknown (or for another device), used or expired; "
    "or the device is revoked",
    404: "Not found",
    409: "No token issued: the device is revoked or belongs to another village",
    413: "The request body is over the route's limit (by default 4 KiB for enrolment, "
    "16 KiB elsewhere)",
    429: "Too many enrolment attempts from this address: try after `Retry-After` seconds",
    503: "The central database cannot be reached",
}
_REVOKE_503 = "Revoked, but the broker's password file could not be rewritten: retry"


def _problem(*codes: int, missing: str = "") -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for error answers (`missing`: what a 404 means here)."""
    return {
        c: {"model": Problem, "description": missing if c == 404 and missing else _PROBLEMS[c]}
        for c in codes
    }


_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "One header row (`reports.EXPORT_COLUMNS`), then one row per entry "
        "in (device, seq) order",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}

VillageId = Annotated[str, Path(pattern=ID_PATTERN, description="Village id")]
DeviceId = Annotated[str, Path(pattern=DEVICE_ID_PATTERN, description="Device id")]
PassbookId = Annotated[str, Path(min_length=1, max_length=64, description="Passbook id")]


def create_app(
    store: CentralStore,
    *,
    admin_token: str,
    enrolment: EnrolmentSettings,
    on_devices_changed: Callable[[], None] | None = None,
    clock: Callable[[], int] = wall_ms,
    limits: HttpLimits | None = None,
    console: ConsoleSettings | None = None,
    registry_packs: pathlib.Path | None = None,
    registry_key: Ed25519PrivateKey | None = None,
    methodology: Methodology | None = None,
    rabbit_logins: bool = False,
) -> FastAPI:
    """The API over `store`. `on_devices_changed` runs after each enrolment and
    revocation (central rewrites the broker's password file and reloads it there);
    `clock` gives central's time in ms (tests move it to expire tokens); `limits`
    bound bodies, enrolment attempts and threads (`central.http_guard`); `console`
    sets the web console's alert thresholds and time zone (`central.console`);
    `registry_packs`, `registry_key` and `methodology` let accounts issue units and
    fetch certificates (`central.registry_desk`; without a key those answer 503);
    `rabbit_logins` serves a RabbitMQ cluster's login check (`central.rabbit_login`)."""
    if len(admin_token) < MIN_ADMIN_TOKEN:
        raise ConfigError(
            f"the admin token must be at least {MIN_ADMIN_TOKEN} characters", key="admin_token"
        )
    limits = limits or HttpLimits()
    console = console or ConsoleSettings()
    console_tz = console.tz
    devices_changed = on_devices_changed or (lambda: None)

    def require_village(village_id: str, actor: Actor) -> None:
        # 403 before 404: a village account learns nothing of other villages.
        may_see(actor, village_id)
        if village_id not in store.villages():
            raise HTTPException(404, f"no village {village_id!r}")

    app = FastAPI(
        title=API_TITLE,
        version=API_VERSION,
        description="Admin API for the operator, and enrolment for kiosks. "
        "All quantities are integers: grams, points, grams CO2e, ms since the epoch.",
        lifespan=thread_limit(limits.threads),
        # Served by central itself (central.console.docs): Swagger UI's files from a CDN
        # leave /docs blank offline, and in mainland China.
        docs_url=None,
        redoc_url=None,
    )
    app.state.auth = Auth(store, admin_token=admin_token, clock=clock)
    guard(app, limits)

    @app.exception_handler(StorageError)
    def storage_unavailable(_request: Request, exc: StorageError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    admin = APIRouter(
        prefix=PREFIX,
        dependencies=[Depends(current_actor)],
        responses={
            **_problem(401, 503),
            403: {"model": Problem, "description": FORBIDDEN[403]["description"]},
        },
        tags=["admin"],
    )

    @admin.get(
        "/devices", response_model=list[DeviceOut], responses=_problem(404, missing=NO_VILLAGE)
    )
    def list_devices(
        village_id: Annotated[
            str | None, Query(pattern=ID_PATTERN, description="Only this village's kiosks")
        ] = None,
        *,
        actor: CurrentActor,
    ) -> list[DeviceOut]:
        """Every enrolled kiosk, with what its last retained status said (a village
        account: its own village's)."""
        if village_id is None and not actor.county:
            village_id = actor.village
        if village_id is not None:
            require_village(village_id, actor)
        return [DeviceOut.of(d) for d in store.devices(village_id)]

    @admin.post(
        "/devices/{device_id}/revoke",
        response_model=DeviceOut,
        responses={
            **_problem(404, missing="No such device"),
            503: {"model": Problem, "description": f"{_PROBLEMS[503]}; or: {_REVOKE_503}"},
        },
    )
    def revoke_device(device_id: DeviceId, actor: CurrentActor) -> DeviceOut:
        """Refuse the kiosk from now on: its batches, status and broker login. Idempotent,
        so a revocation whose broker update failed is completed by calling it again."""
        device = store.device(device_id)
        if device is None:
            raise HTTPException(404, f"no device {device_id!r}")
        may_see(actor, device.village_id)
        if store.revoke_device(device_id, clock(), actor=str(actor)):
            log.info("revoked device %s", device_id)
        try:
            devices_changed()
        except OSError as exc:
            raise HTTPException(
                503,
                f"device {device_id!r} is revoked, but the broker's password file "
                f"could not be rewritten ({exc}); revoke it again once that is fixed",
            ) from exc
        return DeviceOut.of(_must(store.device(device_id)))

    @admin.post(
        "/enrol-tokens",
        response_model=EnrolTokenOut,
        status_code=201,
        responses=_problem(400, 404, 409, 413, missing=NO_VILLAGE),
    )
    def create_enrol_token(body: EnrolTokenIn, actor: CurrentActor) -> EnrolTokenOut:
        """A one-time token that lets `device_id` enrol in `village_id` until `expires_ms`.
        Shown once: central keeps only its hash."""
        require_village(body.village_id, actor)
        now, ttl_s = clock(), body.ttl_hours * 3600
        try:
            token = store.create_enrol_token(
                body.device_id, body.village_id, now, ttl_s=ttl_s, actor=str(actor)
            )
        except CentralError as exc:
            raise HTTPException(409, str(exc)) from exc
        return EnrolTokenOut(
            token=token,
            device_id=body.device_id,
            village_id=body.village_id,
            expires_ms=now + ttl_s * 1000,
        )

    @admin.get(
        "/villages/{village_id}/totals",
        response_model=VillageTotalsOut,
        responses=_problem(404, missing=NO_VILLAGE),
    )
    def village_totals(
        village_id: VillageId, actor: CurrentActor, since: FromDate = None, until: ToDate = None
    ) -> VillageTotalsOut:
        """Grams per category, deposits, points issued and redeemed, grams CO2e avoided;
        net of reversals. `from`/`to`: only those local days (the village's time zone)."""
        require_village(village_id, actor)
        if since is None and until is None:
            return VillageTotalsOut.model_validate(reports.village_totals(store, village_id))
        period = period_of(since, until, exports.village_tz(store, village_id, console_tz))
        return VillageTotalsOut.model_validate(exports.totals_as_api(store, village_id, period))

    @admin.get(
        "/villages/{village_id}/overdrafts",
        response_model=list[OverdraftOut],
        responses=_problem(404, missing=NO_VILLAGE),
    )
    def overdrafts(village_id: VillageId, actor: CurrentActor) -> list[OverdraftOut]:
        """Passbooks whose balance went below zero (kiosks redeeming offline at once)."""
        require_village(village_id, actor)
        return [OverdraftOut.of(o) for o in reports.overdrafts(store, village_id)]

    @admin.get(
        "/villages/{village_id}/double-reversals",
        response_model=list[DoubleReversalOut],
        responses=_problem(404, missing=NO_VILLAGE),
    )
    def double_reversals(village_id: VillageId, actor: CurrentActor) -> list[DoubleReversalOut]:
        """Entries reversed both at their own kiosk and at another, offline at once."""
        require_village(village_id, actor)
        return [DoubleReversalOut.of(d) for d in reports.double_reversals(store, village_id)]

    @admin.get(
        "/villages/{village_id}/export.csv",
        response_class=StreamingResponse,
        responses={**_CSV_RESPONSE, **_problem(404, missing=NO_VILLAGE)},
    )
    def export_csv(
        village_id: VillageId, actor: CurrentActor, since: FromDate = None, until: ToDate = None
    ) -> StreamingResponse:
        """Every entry of the village as CSV, streamed: the raw columns, for programs
        (`entries.csv` is the one for people). `from`/`to`: only those local days."""
        require_village(village_id, actor)
        rows = reports.export_rows(store, village_id)
        if since is not None or until is not None:
            period = period_of(since, until, exports.village_tz(store, village_id, console_tz))
            rows = (r for r in rows if period.holds(r["wall_ms"]))
        chunks = _csv_chunks(rows)
        first = next(chunks)  # here, so a database error is still a 503, not a cut stream
        return StreamingResponse(
            itertools.chain([first], chunks),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{village_id}-entries.csv"'},
        )

    @admin.get(
        "/passbooks/{passbook_id}/statement",
        response_model=StatementOut,
        responses=_problem(404, missing="No entries for this passbook"),
    )
    def statement(passbook_id: PassbookId, actor: CurrentActor) -> StatementOut:
        """Every entry of a passbook across the village's kiosks, with running balance."""
        lines = reports.statement(store, passbook_id)
        if not lines:
            raise HTTPException(404, f"no passbook {passbook_id!r}")
        for device_id in {x.entry.device_id for x in lines}:
            village = _village_of(store, device_id)
            may_see(actor, village)
        return StatementOut.of(passbook_id, lines)

    @admin.get("/dead-letters", response_model=list[DeadLetterOut])
    def dead_letters(
        actor: CurrentActor,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many")] = 100,
    ) -> list[DeadLetterOut]:
        """The most recently refused messages, newest first (county accounts only: a
        refused message's sender is not known to belong to any village)."""
        require_county(actor)
        return [DeadLetterOut.of(d) for d in reports.dead_letters(store, limit)]

    kiosk = APIRouter(prefix=PREFIX, tags=["kiosk"], responses=_problem(503))

    @kiosk.post("/enrol", response_model=EnrolOut, responses=_problem(400, 403, 413, 429))
    def enrol(body: EnrolIn, after: BackgroundTasks) -> EnrolOut:
        """Trade a one-time token for the kiosk's broker credentials. The kiosk made
        its key pair itself and sends only the public key."""
        try:
            done = store.enrol(
                body.token,
                body.device_id,
                body.public_key_bytes(),
                clock(),
                mqtt_password=_password_maker(enrolment.broker_secret),
            )
        except CentralError as exc:
            log.warning("enrolment of %s refused: %s", body.device_id, exc)
            raise HTTPException(403, str(exc)) from exc
        log.info("enrolled device %s in village %s", done.device_id, done.village_id)
        # After the answer: the token is spent and the password exists only in this
        # answer, so a failing broker update must not cost the kiosk its credentials
        # (the kiosk retries its broker connection until the reload has happened).
        after.add_task(devices_changed)
        return EnrolOut(
            device_id=done.device_id,
            village_id=done.village_id,
            mqtt_username=done.mqtt_username,
            mqtt_password=done.mqtt_password,
            broker_url=enrolment.broker_url,
            ca_cert_pem=enrolment.ca_cert_pem,
            central_public_key=enrolment.central_public_key.hex(),
            mqtt_version=enrolment.mqtt_version,
        )

    app.include_router(admin)
    app.include_router(operator_router(store, clock))  # central.api_operator (issue 12)
    app.include_router(export_router(store, console_tz))  # central.api_exports (issue 12)
    app.include_router(kiosk)
    app.include_router(log_router(store))  # central.api_log: public, no login (issue 13)
    if rabbit_logins:  # a RabbitMQ cluster's nodes ask whether a device may log in
        app.include_router(rabbit_login_router(store))
    app.include_router(registry_router(store, registry_packs))  # public, no login (issue 14)
    # central.api_statement: a villager's statement by a signed link, no login (issue 16)
    app.include_router(statement_router(store, enrolment.central_public_key, clock, console_tz))
    desk = RegistryDesk(
        store, clock, registry_packs, registry_key, methodology or default_methodology(),
        console_tz,
    )  # fmt: skip
    app.include_router(registry_ops_router(desk))  # accounts, buyers included (issue 14)
    install_console(app, store, console, clock, desk)
    return app


def _village_of(store: CentralStore, device_id: str) -> str:
    device = store.device(device_id)
    return "" if device is None else device.village_id  # "": no village may see it


def _must(device: Device | None) -> Device:
    if device is None:  # it was there a moment ago and devices are never deleted
        raise HTTPException(404, "the device disappeared")
    return device


def _csv_chunks(rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    """The header, then rows in chunks: one thread hop per chunk, not per row."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=reports.EXPORT_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    while True:
        batch = list(itertools.islice(rows, CSV_ROWS_PER_CHUNK))
        writer.writerows(batch)
        yield buf.getvalue()
        if len(batch) < CSV_ROWS_PER_CHUNK:
            return
        buf.seek(0)
        buf.truncate()


def _password_maker(secret: bytes | None) -> Callable[[str, bytes], str] | None:
    if secret is None:
        return None
    return lambda device_id, key: device_password(secret, device_id, key)
