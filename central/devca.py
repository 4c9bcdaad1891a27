"""The broker's TLS files: `DevCA`, which `central.broker.write_broker_config` runs
for the broker folder's ``tls/`` (see docs/broker.md, Development CA vs production
CA)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from greenpass.errors import ConfigError
from greenpass.files import write_private, write_public

_RENEW_BEFORE = dt.timedelta(days=30)
_CA = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


class DevCA:
    """A development/demo certificate authority and the broker's server certificate.

    EC P-256 keys, a CA valid for ten years and a server certificate for the given
    host names and IP addresses. This is for laptops, tests and the demo only:
    production uses the operator's own CA (or a public one) and puts its
    certificate and the server's files in the same places *without* ``ca.key``;
    `create` then checks them and never overwrites them. Kiosks are provisioned
    with that CA's certificate.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ca_cert = folder / "ca.crt"
        self.ca_key = folder / "ca.key"
        self.server_cert = folder / "server.crt"
        self.server_key = folder / "server.key"

    @classmethod
    def create(
        cls,
        folder: Path,
        *,
        hostnames: Sequence[str] = ("localhost",),
        ips: Sequence[str] = ("127.0.0.1",),
    ) -> DevCA:
        """Make (or reuse, when still valid for these names) the CA and server files."""
        if not hostnames and not ips:
            raise ConfigError("a server certificate needs at least one host name or IP")
        ca = cls(folder)
        folder.mkdir(parents=True, exist_ok=True)
        now = dt.datetime.now(dt.UTC)
        if ca.ca_cert.exists() and not ca.ca_key.exists():
            ca._check_operator_files(hostnames, ips, now)
            return ca
        loaded = ca._load_ca(now)
        if loaded is None:
            loaded = ca._new_ca(now)
            ca._new_server(loaded, hostnames, ips, now)
        elif not ca._server_ok(loaded[0], hostnames, ips, now):
            ca._new_server(loaded, hostnames, ips, now)
        return ca

    def _check_operator_files(
        self, hostnames: Sequence[str], ips: Sequence[str], now: dt.datetime
    ) -> None:
        """A CA certificate without its key is the operator's CA: use, never overwrite.

        The issuer is not checked here: an operator's server certificate may come
        through intermediates (a chain in ``server.crt``) that only TLS verifies.
        """
        try:
            x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.ca_cert}: not a PEM certificate ({exc})") from exc
        if not self._server_ok(None, hostnames, ips, now):
            names = ", ".join([*hostnames, *ips])
            raise ConfigError(
                f"{self.server_cert}: missing, not matching {self.server_key.name}, expiring "
                f"within {_RENEW_BEFORE.days} days or not valid for {names}; there is no "
                "CA key here to issue a new one, so ask the CA that issued it"
            )

    def _load_ca(self, now: dt.datetime) -> _CA | None:
        try:
            cert = x509.load_pem_x509_certificate(self.ca_cert.read_bytes())
            key = serialization.load_pem_private_key(self.ca_key.read_bytes(), None)
        except (OSError, ValueError):  # missing or unreadable: make a new one
            return None
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            return None
        if cert.not_valid_after_utc - _RENEW_BEFORE < now:
            return None
        return cert, key

    def _server_ok(
        self,
        ca: x509.Certificate | None,
        hostnames: Sequence[str],
        ips: Sequence[str],
        now: dt.datetime,
    ) -> bool:
        try:
            cert = x509.load_pem_x509_certificate(self.server_cert.read_bytes())
            key = serialization.load_pem_private_key(self.server_key.read_bytes(), None)
            if ca is not None:
                cert.verify_directly_issued_by(ca)
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (OSError, ValueError, TypeError, InvalidSignature, x509.ExtensionNotFound):
            return False
        wanted_ips = {ipaddress.ip_address(ip) for ip in ips}
        return (
            key.public_key() == cert.public_key()
            and cert.not_valid_after_utc - _RENEW_BEFORE > now
            and set(hostnames) <= set(san.get_values_for_type(x509.DNSName))
            and wanted_ips <= set(san.get_values_for_type(x509.IPAddress))
        )

    def _new_ca(self, now: dt.datetime) -> _CA:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Green Passbook development CA")])
        cert = (
            _builder(name, name, key.public_key(), now, dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(cert_sign=True), critical=True)
            .sign(key, hashes.SHA256())
        )
        write_private(self.ca_key, _key_pem(key))
        write_public(self.ca_cert, cert.public_bytes(serialization.Encoding.PEM))
        return cert, key

    def _new_server(
        self,
        ca: _CA,
        hostnames: Sequence[str],
        ips: Sequence[str],
        now: dt.datetime,
    ) -> None:
        _issue(ca, hostnames, ips, now, [ExtendedKeyUsageOID.SERVER_AUTH],
               self.server_cert, self.server_key)  # fmt: skip

    def issue_peer(
        self,
        cert_path: Path,
        key_path: Path,
        *,
        hostnames: Sequence[str] = ("localhost",),
        ips: Sequence[str] = ("127.0.0.1",),
    ) -> None:
        """A certificate for a peer that is client and server at once — a RabbitMQ node
        on the cluster's Erlang distribution, which dials its peers and is dialled by
        them (and by `rabbitmqctl`), each side checking the other's."""
        now = dt.datetime.now(dt.UTC)
        ca = self._load_ca(now)
        if ca is None:
            raise ConfigError(f"no usable development CA in {self.folder}: run create first")
        usages = [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        _issue(ca, hostnames, ips, now, usages, cert_path, key_path)


def _issue(
    ca: _CA,
    hostnames: Sequence[str],
    ips: Sequence[str],
    now: dt.datetime,
    usages: list[x509.ObjectIdentifier],
    cert_path: Path,
    key_path: Path,
) -> None:
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else ips[0])]
    )
    sans: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        # 825 days: the longest server lifetime that browsers and Apple's TLS stack accept.
        _builder(subject, ca_cert.subject, key.public_key(), now, dt.timedelta(days=825))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    write_private(key_path, _key_pem(key))
    write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    now: dt.datetime,
    lifetime: dt.timedelta,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        # An hour back: a kiosk whose clock is a little behind must still accept it.
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + lifetime)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
