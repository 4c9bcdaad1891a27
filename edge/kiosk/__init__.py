"""The kiosk around the ledger: config, devices and the daemon that wires them.

`daemon.Kiosk` runs the villager's session and the staff desk (`session`, `desk`:
pure state machines) against the scale, scanner, lights and printer (`devices`),
reads signed cards (`cards`), prints receipts (`receipt`, `receipt_printing`) and
starts the uplink (`uplink_handle`); the touchscreen reads it through `view`, acts
through `actions` and shows the day's `report`. `config` loads the kiosk's TOML
file once.
"""
