"""The kiosk's software, in two rooms.

- `edge.ledger`: the ledger store and everything that reads or writes it (villagers,
  staff, catalogue, deposits, reversals, outboxes, what central sends). Knows no
  screen, no MQTT and no serial port.
- `edge.kiosk`: the kiosk that runs around it: config, devices, the villager's session
  and staff desk, cards, receipts, the daemon and what the touchscreen reads.

The record both share with central (entries, rules, ids) is in `greenpass.record`
(docs/design.md §2).
"""
