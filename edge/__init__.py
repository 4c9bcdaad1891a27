"""The kiosk's core: ledger, rules, villagers, staff, catalogue.

Knows no screen, no MQTT and no serial port (DESIGN §2): the daemon wires
those to it.
"""
