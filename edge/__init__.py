"""The kiosk's core: ledger, rules, villagers, staff, catalogue.

Knows no screen, no MQTT and no serial port (docs/design.md §2): the daemon wires
those to it.
"""
