"""A RabbitMQ node's files as central writes them (central.rabbit): the listeners, the
login check's backends, and the Erlang terms (advanced.config, the distribution's TLS
options) read back by Erlang itself where it is installed. The cluster running on
them is `make test-cluster`'s."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from central.rabbit import (
    LoginCheck,
    RabbitNode,
    _erl_string,
    advanced_config,
    dist_erl_args,
    dist_tls_options,
    enabled_plugins,
    node_config,
)
from greenpass.errors import ConfigError

TLS = (Path("/etc/gp/ca.crt"), Path("/etc/gp/node.crt"), Path("/etc/gp/node.key"))


def nodes(amqps: int) -> list[RabbitNode]:
    return [RabbitNode(f"gp{i}@h{i}", 5672, 8883, 25672, 15672, amqps) for i in (1, 2, 3)]


def lines(text: str) -> set[str]:
    return {x.strip() for x in text.splitlines()}


def consult(tmp_path: Path, text: str) -> str:
    """What Erlang's file:consult makes of `text` (the check that it is valid Erlang)."""
    erl = shutil.which("erl")
    if erl is None:
        pytest.skip("no Erlang here: make test-cluster installs RabbitMQ, and Erlang with it")
    path = tmp_path / "terms.config"
    path.write_text(text)
    r = subprocess.run(
        [erl, "-noshell", "-eval",
         f'io:format("~p", [element(1, file:consult("{path}"))]), halt().'],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return r.stdout.strip()


def test_plain_amqp_stays_on_loopback_once_amqps_is_offered() -> None:
    wide = lines(node_config(nodes(5671), 1, tls=TLS, bind="0.0.0.0"))
    assert "listeners.tcp.default = 127.0.0.1:5672" in wide
    assert "listeners.ssl.default = 0.0.0.0:5671" in wide
    assert "mqtt.listeners.ssl.default = 0.0.0.0:8883" in wide
    assert "mqtt.listeners.tcp = none" in wide
    # Without AMQP over TLS the workers need the plain listener where they are.
    assert "listeners.tcp.default = 0.0.0.0:5672" in lines(
        node_config(nodes(0), 1, tls=TLS, bind="0.0.0.0")
    )


def test_a_login_check_is_https_checked_against_a_ca() -> None:
    ca = Path("/etc/gp/central-ca.crt")
    for url in ("http://central:8443/broker/rabbitmq/user", "central:8443", "https://a b/"):
        with pytest.raises(ConfigError, match="https"):
            LoginCheck(url, ca)
    with pytest.raises(ConfigError, match="host name"):
        LoginCheck("https://10.0.0.5:8443/broker/rabbitmq/user", ca, 'x"}]}')
    with pytest.raises(ConfigError, match="printable ASCII"):
        advanced_config(LoginCheck("https://central:8443/u", Path("/etc/gp/证书.crt")))
    with pytest.raises(ConfigError, match="printable ASCII"):
        _erl_string(Path("/etc/my certs/ca.crt"))


def test_the_login_check_comes_after_the_internal_users(tmp_path: Path) -> None:
    url = "https://127.0.0.1:8443/broker/rabbitmq/user"
    login = LoginCheck(url, Path("/etc/gp/central-ca.crt"), "central.county.example")
    conf = node_config(nodes(0), 2, tls=TLS, login=login)
    order = [x for x in conf.splitlines() if x.startswith("auth_backends")]
    assert order == [
        "auth_backends.1 = internal",
        "auth_backends.2.authn = http",
        "auth_backends.2.authz = internal",
    ]
    assert f"auth_http.user_path = {url}" in lines(conf)
    assert "auth_backends" not in node_config(nodes(0), 2, tls=TLS)
    assert "rabbitmq_auth_backend_http" in enabled_plugins(login)
    assert "rabbitmq_auth_backend_http" not in enabled_plugins(None)
    advanced = advanced_config(login)
    assert '{server_name_indication, "central.county.example"}' in advanced
    assert '{cacertfile, "/etc/gp/central-ca.crt"}' in advanced
    assert consult(tmp_path, advanced) == "ok"
    assert consult(tmp_path, advanced_config(None)) == "ok"
    assert consult(tmp_path, advanced.replace("}]}]}]", "}]}]")) == "error"  # it can fail


def test_the_distribution_asks_a_certificate_of_every_peer(tmp_path: Path) -> None:
    options = dist_tls_options(*TLS)
    server, client = options.splitlines()
    assert "{fail_if_no_peer_cert, true}" in server and "{verify, verify_peer}" in server
    assert "{verify, verify_peer}" in client and '{certfile, "/etc/gp/node.crt"}' in client
    assert consult(tmp_path, options) == "ok"
    assert dist_erl_args(Path("/etc/gp/dist.config")) == (
        "-proto_dist inet_tls -ssl_dist_optfile /etc/gp/dist.config"
    )
