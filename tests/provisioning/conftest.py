"""Provisioning tests share the sync tests' real Mosquitto (production config and ACL)."""

from tests.sync.conftest import broker  # noqa: F401
