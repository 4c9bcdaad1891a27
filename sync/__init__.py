"""Store-and-forward sync over MQTT: the wire protocol and signing (both ends),
the kiosk uplink, central's receiver."""
