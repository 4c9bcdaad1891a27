"""The kiosk's ledger: one SQLite file, append-only and hash-chained.

`ledger.Ledger` is the one door: every write (deposit, redemption, award, reversal,
enrolment, stock) goes through it, checked against the rules and the villager's
state and appended with its outbox row in one transaction. Its parts: the file and
its migrations (`store`, `migrations`), appending (`appender`, `rows`), reads
(`queries`), deposits, reversals, villagers, staff, the catalogue, what central
sends (`central_state`, `snapshot`, `active_rules`), the outboxes (`outbox`,
`personal_outbox`), the transparency-log record (`log_record`), the clock, and
`greenpass ledger …` (`cli`).

Knows no screen, no MQTT and no serial port (docs/design.md §2).
"""
