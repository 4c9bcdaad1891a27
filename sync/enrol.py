"""The kiosk's side of enrolment: trade a one-time token for broker credentials.

A technician provisioning a kiosk runs this once: the kiosk has generated its
Ed25519 key pair on the device, and sends central the token the operator issued,
its device id and its raw public key (hex). Central answers with what the kiosk
needs to sync (`Credentials`): its MQTT username and password, the broker URL, the
CA certificate that signs the broker's TLS certificate, and central's public key
(to verify the signed village state it will receive).

Central serves this over TLS with its own CA: `ca_file` is that CA's certificate,
which the technician brings (``HOME/http-tls/ca.crt`` on central); without it the
system's trust store must know central's certificate. Plain ``http://`` is refused
unless central is on this machine (a loopback address): the token and the
password it buys would cross the network in clear.

Every failure is a `CentralError` whose message says what to do next:
central unreachable or not trusted, token refused (used, expired, unknown),
too many attempts, or an answer that is not what this software understands.

`greenpass sync enrol` and `greenpass provision` wrap it; `save_credentials` writes what
they receive.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgspec

from greenpass.errors import CentralError, ConfigError
from greenpass.files import write_private, write_public
from sync.config import SyncConfig
from sync.transport import MQTT_VERSIONS

ENROL_PATH = "/api/v1/enrol"
_KEY_BYTES = 32


@dataclass(frozen=True)
class Credentials:
    """What central gives an enrolled kiosk (mirrors the ``POST /api/v1/enrol`` answer)."""

    device_id: str
    village_id: str
    mqtt_username: str
    mqtt_password: str
    broker_url: str
    ca_cert_pem: str
    central_public_key: bytes  # raw 32-byte Ed25519 key
    mqtt_version: str = "5"  # "3.1.1" from a central on a RabbitMQ cluster


class _Answer(msgspec.Struct):
    device_id: str
    village_id: str
    mqtt_username: str
    mqtt_password: str
    broker_url: str
    ca_cert_pem: str
    central_public_key: str
    mqtt_version: str = "5"  # a central older than the field is on Mosquitto


class _Issue(msgspec.Struct):
    loc: list[str | int] = msgspec.field(default_factory=list)
    msg: str = ""


class _Problem(msgspec.Struct):
    detail: str | list[_Issue] | None = None


def check_central_url(central_url: str) -> None:
    """Refuse a URL that would send the token in clear over a network."""
    try:
        parsed = httpx.URL(central_url)
    except httpx.InvalidURL as exc:
        raise CentralError(
            f"central URL {central_url!r} is not valid ({exc}); give e.g. https://central.example"
        ) from exc
    if parsed.scheme == "http" and not _loopback(parsed.host):
        raise CentralError(
            f"central URL {central_url!r} is plain HTTP: the enrolment token and the broker "
            "password would cross the network in clear; use https://"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tls_verify(ca_file: Path | None) -> ssl.SSLContext | bool:
    """What httpx verifies central's certificate with: `ca_file`, or the system's CAs."""
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{ca_file}: cannot read central's CA certificate ({exc}); copy central's "
            "http-tls/ca.crt here again"
        ) from exc


def enrol(
    central_url: str,
    token: str,
    device_id: str,
    public_key: bytes,
    *,
    ca_file: Path | None = None,
    timeout_s: float = 10,
    transport: httpx.BaseTransport | None = None,
) -> Credentials:
    """Enrol `device_id` with central at `central_url` (e.g. ``https://central.example``).

    `public_key` is the kiosk's raw 32-byte Ed25519 public key; `ca_file` the CA
    central's TLS certificate chains to (None: the system's). `transport` is the
    seam for tests (an in-process app or `httpx.MockTransport`).
    """
    if len(public_key) != _KEY_BYTES:
        raise ValueError(f"an Ed25519 public key has {_KEY_BYTES} bytes, got {len(public_key)}")
    check_central_url(central_url)
    url = central_url.rstrip("/") + ENROL_PATH
    body = {"token": token, "device_id": device_id, "public_key": public_key.hex()}
    verify = tls_verify(ca_file)
    try:
        with httpx.Client(timeout=timeout_s, transport=transport, verify=verify) as client:
            response = client.post(url, json=body)
    except httpx.TimeoutException as exc:
        raise CentralError(
            f"central unreachable at {url}: no answer within {timeout_s:g} s ({exc}); "
            "check the network and that the central server is running"
        ) from exc
    except httpx.InvalidURL as exc:
        raise CentralError(
            f"central URL {central_url!r} is not valid ({exc}); give e.g. https://central.example"
        ) from exc
    except httpx.TransportError as exc:  # connection refused, DNS, TLS, unsupported scheme
        raise CentralError(unreachable(url, exc, ca_file)) from exc
    if response.status_code == httpx.codes.FORBIDDEN:
        reason = _detail(response)  # central's own words: "enrolment refused: the token …"
        raise CentralError(
            reason if reason.startswith("enrolment refused") else f"enrolment refused: {reason}"
        )
    if response.status_code == httpx.codes.UNPROCESSABLE_ENTITY:
        raise CentralError(f"central rejected the enrolment request: {_detail(response)}")
    if response.status_code == httpx.codes.TOO_MANY_REQUESTS:
        wait = response.headers.get("retry-after", "")
        raise CentralError(
            "central refused: too many enrolment attempts from this address; try again in "
            + (f"{wait} s" if wait.isdigit() else "a minute")
        )
    if response.status_code != httpx.codes.OK:
        raise CentralError(
            f"central at {url} answered HTTP {response.status_code}: {_detail(response)}"
        )
    return _credentials(url, device_id, response.content)


def unreachable(url: str, exc: Exception, ca_file: Path | None) -> str:
    """The technician's message for a failed connection, TLS trust failures named."""
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        hint = (
            f"central's certificate does not chain to {ca_file}, or does not name this host"
            if ca_file
            else "central's certificate is not trusted here: give central's CA file "
            "(--central-ca, central's http-tls/ca.crt)"
        )
        return f"central at {url} is not trusted: {text}; {hint}"
    if url.startswith("http://") and "disconnected" in text:
        text += " (central serves HTTPS: use https://)"
    elif "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        text += " (this port answers plain HTTP, not HTTPS)"
    return (
        f"central unreachable at {url}: {text}; "
        "check the URL, the network and that the central server is running"
    )


def _credentials(url: str, device_id: str, content: bytes) -> Credentials:
    try:
        answer = msgspec.json.decode(content, type=_Answer)
        central_key = bytes.fromhex(answer.central_public_key)
    except (msgspec.DecodeError, ValueError) as exc:
        raise CentralError(
            f"central at {url} sent an answer this kiosk does not understand ({exc}); "
            "is the URL that of a Green Passbook central of a matching version?"
        ) from exc
    if len(central_key) != _KEY_BYTES:
        raise CentralError(
            f"central at {url} sent a {len(central_key)}-byte public key, not {_KEY_BYTES}"
        )
    if answer.mqtt_version not in MQTT_VERSIONS:
        raise CentralError(
            f"central at {url} asks for MQTT {answer.mqtt_version!r}, which this kiosk does "
            f"not speak ({', '.join(MQTT_VERSIONS)})"
        )
    if answer.device_id != device_id:
        raise CentralError(
            f"central at {url} enrolled device {answer.device_id!r}, not {device_id!r}"
        )
    return Credentials(
        device_id=answer.device_id,
        village_id=answer.village_id,
        mqtt_username=answer.mqtt_username,
        mqtt_password=answer.mqtt_password,
        broker_url=answer.broker_url,
        ca_cert_pem=answer.ca_cert_pem,
        central_public_key=central_key,
        mqtt_version=answer.mqtt_version,
    )


def _detail(response: httpx.Response) -> str:
    """The one-line reason in a FastAPI error body, or the start of the raw text."""
    try:
        problem = msgspec.json.decode(response.content, type=_Problem)
    except msgspec.DecodeError:  # also ValidationError: not FastAPI's shape
        return response.text[:200].strip() or response.reason_phrase
    if isinstance(problem.detail, str):
        return problem.detail
    if isinstance(problem.detail, list):  # FastAPI's validation errors
        parts = [".".join(str(p) for p in i.loc) + f": {i.msg}" for i in problem.detail]
        return "; ".join(parts) or response.reason_phrase
    return response.reason_phrase


def save_credentials(folder: Path, creds: Credentials, key_file: Path) -> SyncConfig:
    """Write the MQTT password (mode 0600) and CA into `folder`; the `[sync]` settings."""
    folder.mkdir(parents=True, exist_ok=True)
    password = folder / "mqtt.password"
    write_private(password, (creds.mqtt_password + "\n").encode("utf-8"))
    ca = folder / "ca.crt"
    if creds.ca_cert_pem:
        write_public(ca, creds.ca_cert_pem.encode("ascii"))
    return SyncConfig(
        broker_url=creds.broker_url,
        password_file=password,
        ca_cert=ca if creds.ca_cert_pem else None,
        key_file=key_file,
        central_public_key=creds.central_public_key,
        mqtt_version=creds.mqtt_version,
    )
